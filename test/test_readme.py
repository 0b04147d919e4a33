"""The README's quick start works as written: its curl block runs against `python3 run.py serve`.

The block is read from README.md ("Try it in two minutes", the first `bash` block), only its
`B=http://127.0.0.1:8000` line is pointed at the test's port, and it runs under `bash -e` with
the real curl and python3 against the first command of the README (uv, the server's packages,
the shipped config with mcp-server-time, SQLite in DATA_DIR). Its output must show what the
README's comments promise: an answer, reasoning before an answer, a real tool call, a cancel
that answers 202, and a re-attach that replays from event 2 to a `done` with finish_reason
"cancelled".
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from test.support.server import ROOT, running_server, server_env

README = ROOT / "README.md"
DEFAULT_BASE = "B=http://127.0.0.1:8000"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("curl") and shutil.which("python3")), reason="needs curl and python3"
    ),
]


def quick_start_block() -> str:
    """The first bash block of the README's "Try it" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Try it in two minutes", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "no bash block in the README's Try-it section"
    return match.group(1)


def sse_events(text: str) -> list[dict[str, Any]]:
    """Every SSE event in `text`, in order: {"event", "id", "data", "line"}."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines()):
        if line.startswith("event: "):
            current = {"event": line[7:], "line": number}
        elif line.startswith("id: ") and current:
            current["id"] = int(line[4:])
        elif line.startswith("data: ") and current:
            current["data"] = json.loads(line[6:])
            events.append(current)
            current = {}
    return events


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    block = quick_start_block()
    assert block.startswith(DEFAULT_BASE + "\n"), "the block must start with the B= line"
    assert "python3 -c" in block and "python -c" not in block.replace("python3 -c", "")
    env = server_env(tmp_path, CONFIG_DIR=str(ROOT / "config"))  # DATABASE_URL unset
    script = tmp_path / "quick_start.sh"
    with running_server(["python3", "run.py", "serve"], env) as server:
        script.write_text(block.replace(DEFAULT_BASE, f"B={server.base_url}", 1))
        done = subprocess.run(
            ["bash", "-e", str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        server.stop()
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert (tmp_path / "data" / "vektor.db").is_file()  # the default database is in DATA_DIR

    registered = json.loads(out.splitlines()[0])
    assert registered["username"] == "ada" and "password" not in registered

    events = sse_events(out)
    finishes = [e["data"]["finish_reason"] for e in events if e["event"] == "done"]
    assert finishes == ["stop", "stop", "stop", "cancelled"], out
    thought = "".join(e["data"]["content"] for e in events if e["event"] == "reasoning")
    assert thought == "Thinking about: why is the sky blue?…", out
    results = [e["data"] for e in events if e["event"] == "tool_result"]
    assert len(results) == 1 and results[0]["status"] == "ok", out
    assert "Europe/Paris" in results[0]["content"]

    lines = out.splitlines()
    assert lines.count("202") == 1, out  # the cancel
    after_cancel = [e for e in events if e["line"] > lines.index("202")]
    assert after_cancel[0]["id"] == 2, "re-attach with Last-Event-ID: 1 replays from event 2"
    assert after_cancel[-1]["event"] == "done"
    replayed = "".join(e["data"]["content"] for e in after_cancel if e["event"] == "delta")
    assert replayed.startswith("Echo:") and "twenty" not in replayed  # cut short by the cancel


# what a reader copies into a shell: Debian and Ubuntu have `python3`, not `python`
DOCUMENTED = ["README.md", ".env.example", "docker-compose.yml", "Dockerfile", "run.py", "main.py"]
DOCUMENTED += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTED += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "scripts").glob("*.py"))]
BARE_PYTHON = re.compile(r"(?<![\w/.-])python(?=\s)")
THROUGH_UV = re.compile(r"uv run (--no-dev )?$")  # `uv run python ...` brings its own


def reader_text(name: str) -> str:
    """What a reader sees of a file: a Python file's usage docstring, else the whole file."""
    text = (ROOT / name).read_text(encoding="utf-8")
    return (ast.get_docstring(ast.parse(text)) or "") if name.endswith(".py") else text


def test_the_docs_never_tell_a_reader_to_run_bare_python() -> None:
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in DOCUMENTED
        for number, line in enumerate(reader_text(name).splitlines(), 1)
        for match in BARE_PYTHON.finditer(line)
        if not THROUGH_UV.search(line[: match.start()])
    ]
    assert found == [], "use python3 (or uv run python):\n" + "\n".join(found)


def branches_block() -> str:
    """The bash block of the README's "Branches" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Branches", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "no bash block in the README's Branches section"
    return match.group(1)


def test_the_readme_branches_block_runs_as_written(tmp_path: Path) -> None:
    """Regenerate, edit, continue, fork, switch and delete on the offline default."""
    quick = quick_start_block().splitlines()
    login = quick[: next(i for i, line in enumerate(quick) if line.startswith("TOKEN=")) + 1]
    env = server_env(tmp_path, CONFIG_DIR=str(ROOT / "config"))
    script = tmp_path / "branches.sh"
    with running_server(["python3", "run.py", "serve"], env) as server:
        prelude = "\n".join(login).replace(DEFAULT_BASE, f"B={server.base_url}", 1)
        script.write_text(prelude + "\n" + branches_block())
        done = subprocess.run(
            ["bash", "-e", str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        server.stop()
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    events = sse_events(out)
    names = [e["event"] for e in events]
    # continue: the same message, its saved text first, then the rest, to a normal stop
    assert names[:2] == ["start", "snapshot"], out
    answer = events[0]["data"]["message_id"]
    assert events[1]["data"]["message_id"] == answer
    continued = events[: names.index("done") + 1]
    rest = "".join(e["data"]["content"] for e in continued if e["event"] == "delta")
    assert events[1]["data"]["content"] + rest == "Echo: Branch me: one two three four"
    assert continued[-1]["data"]["finish_reason"] == "stop"
    # regenerate: a new assistant message under the same question
    starts = [e["data"] for e in events if e["event"] == "start"]
    assert starts[1]["message_id"] != answer
    assert starts[1]["user_message_id"] == starts[0]["user_message_id"]
    # the fork below the first answer, then the edit's branch is the active one
    assert starts[2]["user_message_id"] not in (starts[0]["user_message_id"],)
    lines = out.splitlines()
    assert "[('user', 2), ('assistant', 1)]" in lines, out
    assert lines[-2:] == ["200", "204"], out
