"""The capacity harness runs end to end (`bench/chat_relay.py --quick`), on 127.0.0.1 only.

No timing is asserted: the figures are the benchmark's business. This checks that every
scenario produces its figures, that no stream failed and that the result file has the shape
bench/README.md describes. The `workers` scenario (gunicorn + Redis) is left out here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_produces_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "capacity.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chat_relay.py"),
            "--quick",
            "--allow-load",  # the machine's load is recorded in the result, not judged here
            "--scenarios",
            "ttft,paced,burst,ramp,idle",
            "--burst",
            "20",
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

    assert data["repeats"] == 1
    assert len(data["runs"]) == 1
    run = data["runs"][0]
    assert len(run["loadavg_before"]) == 3
    assert isinstance(run["under_load"], bool)
    for key in (
        "ttft_added_p50_ms",
        "paced_gap_p99_ratio",
        "paced_app_cpu_us_per_token",
        "burst_ttft_p99_added_ms",
        "burst_app_cpu_ms_per_start",
        "ramp_ceiling_streams",
        "idle_kib_per_stream",
    ):
        assert key in data["medians"], key
        assert data["medians"][key]["runs"] == [run["figures"][key]]
    assert run["concurrent_streams"]["errors"] == 0
    assert run["burst"]["errors"] == 0
    assert run["idle"]["errors"] == 0
    assert isinstance(run["ramp"]["loadgen_kept_up"], bool)  # a timing verdict: not asserted
    for step in run["ramp"]["steps"]:
        assert step["direct"]["errors"] == 0
    assert run["ramp"]["steps"][0]["app"]["errors"] == 0
    assert "metric" in result.stdout  # the closing table
