"""The WebSocket harness runs end to end (`bench/ws_idle.py --quick`), on 127.0.0.1 only.

No timing is asserted (the figures are the benchmark's business): every figure is there,
every socket authenticated and no stream failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_run_produces_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "ws.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "ws_idle.py"),
            "--quick",
            "--allow-load",  # the machine's load is recorded in the result, not judged here
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(output.read_text())
    assert isinstance(data["under_load"], bool)
    idle, paced = data["idle"], data["paced"]
    assert idle["sockets"] == 200 and idle["kib_per_socket"] > 0
    assert idle["probe_rtt_ms_with"]["n"] > 0 and idle["probe_rtt_ms_without"]["n"] > 0
    assert paced["errors"] == 0
    assert paced["gap_ms"]["ws"]["n"] > 0 and paced["gap_ms"]["sse"]["n"] > 0
    assert paced["gap_p99_ratio_ws_over_sse"] > 0
