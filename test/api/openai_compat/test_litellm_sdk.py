"""LiteLLM's SDK (`litellm.completion(model="openai/…", api_base=…, stream=True)`) against
/v1. LiteLLM is not a project dependency: CI installs it in its own venv (`.ci/run`,
`LITELLM_BIN`); its Python runs the client in a subprocess. Without it the test skips."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

BIN = os.environ.get("LITELLM_BIN") or shutil.which("litellm")
PYTHON = Path(BIN).parent / "python" if BIN else None
CLIENT = """
import os, litellm
chunks = litellm.completion(
    model="openai/vektor-echo", api_base=os.environ["V1_BASE"], api_key=os.environ["V1_KEY"],
    messages=[{"role": "user", "content": "hello from litellm"}], stream=True,
)
pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
print(len([p for p in pieces if p]), "".join(pieces), sep="|")
"""

pytestmark = pytest.mark.skipif(
    PYTHON is None or not PYTHON.exists(), reason="LiteLLM is not installed (LITELLM_BIN)"
)


async def test_litellm_sdk_streams(live_url: str, api_key: dict[str, Any]) -> None:
    assert PYTHON is not None
    env = {
        **os.environ,
        "V1_BASE": live_url + "/v1",
        "V1_KEY": api_key["key"],
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of LiteLLM's price list
    }
    proc = await asyncio.create_subprocess_exec(
        str(PYTHON), "-c", CLIENT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    count, text = out.decode().strip().splitlines()[-1].split("|", 1)
    assert text == "Echo: hello from litellm"
    assert int(count) >= 3  # streamed word by word
