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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import profile  # noqa: E402
from bench.chat_relay import GUARD_FILE, guard_breaches  # noqa: E402


@pytest.mark.slow
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
            "--profile",
            str(tmp_path / "profile"),
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
    # --profile: each scenario's summary says where the app's CPU went, by area
    for scenario in ("ttft", "paced", "burst", "ramp", "idle"):
        text = (tmp_path / "profile" / f"{scenario}.txt").read_text()
        assert int(text.split("samples (GIL held): ")[1].split()[0]) > 0, scenario
    text = (tmp_path / "profile" / "paced.txt").read_text()
    assert "## self time by area" in text and "  app: " in text


def _medians(**values: float) -> dict[str, dict[str, float]]:
    return {key: {"median": value} for key, value in values.items()}


def test_the_guard_names_each_figure_past_its_limit() -> None:
    limits = {"paced_app_cpu_us_per_token": {"max": 125}, "ramp_ceiling_streams": {"min": 600}}
    assert (
        guard_breaches(_medians(paced_app_cpu_us_per_token=124, ramp_ceiling_streams=600), limits)
        == []
    )
    breaches = guard_breaches(
        _medians(paced_app_cpu_us_per_token=140.5, ramp_ceiling_streams=400), limits
    )
    assert breaches == [
        "paced_app_cpu_us_per_token: median 140.5 > limit 125",
        "ramp_ceiling_streams: median 400 < limit 600",
    ]
    # a scenario left out of the run is not a breach
    assert guard_breaches(_medians(), limits) == []


def test_the_committed_guard_limits_every_headline_cost() -> None:
    limits = json.loads(GUARD_FILE.read_text())
    for database in ("sqlite", "postgresql"):
        for key in (
            "paced_app_cpu_us_per_token",
            "ramp_step1_app_cpu_us_per_token",
            "burst_app_cpu_ms_per_start",
            "ttft_added_p50_ms",
            "idle_kib_per_stream",
        ):
            assert "max" in limits[database][key], (database, key)


def test_the_profile_summary_sums_samples_by_area() -> None:
    raw = (
        'process 1:"main.py";thread (0x1);run (/x/lib/python3.11/asyncio/events.py:80);'
        "send (/x/site-packages/uvicorn/protocols/http/httptools_impl.py:500) 6\n"
        'process 1:"main.py";thread (0x1);run (/x/lib/python3.11/asyncio/events.py:80);'
        "follow (/work/main/app/services/chat/log.py:90);"
        "encode (/work/main/app/core/sse.py:20) 4\n"
    )
    summary = profile.summarize(raw)
    assert summary["samples"] == 10
    assert dict(summary["self_by_area_pct"]) == {
        "uvicorn (HTTP parsing, socket writes)": 60.0,
        "app: core (security, sse, rate limits)": 40.0,
    }
    inclusive = dict(summary["app_inclusive_pct"])
    assert inclusive["follow (app/services/chat/log.py)"] == 40.0
