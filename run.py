#!/usr/bin/env python3
"""The two first-contact commands, on a machine that has only `python3`.

    python3 run.py serve [main.py args]   # the server on the embedded defaults
    python3 run.py test  [pytest args]    # the test suite (TEST_DATABASE_URL selects PostgreSQL)

Both find `uv` (on PATH, in ~/.local/bin, or in `.tools/`), install it from PyPI into
`.tools/uv-venv` when it is missing, then hand over to `uv run`, which builds `.venv` from
the committed `uv.lock` on first use. `serve` installs only what the server needs
(`--no-dev`); `test` adds the `dev` group (pytest, fake servers, linters).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
USAGE = "usage: python3 run.py serve|test [args...]"


def _candidates() -> list[Path]:
    found = shutil.which("uv")
    paths = [Path(found)] if found else []
    bin_dir = "Scripts" if os.name == "nt" else "bin"
    paths += [
        Path.home() / ".local" / "bin" / "uv",
        TOOLS / "uv-venv" / bin_dir / ("uv.exe" if os.name == "nt" else "uv"),
    ]
    return paths


def find_uv() -> str | None:
    """An installed uv, if any."""
    for path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def install_uv() -> str:
    """Install uv from PyPI into a private venv (no system packages touched)."""
    target = TOOLS / "uv-venv"
    print(f"uv not found: installing it from PyPI into {target}", file=sys.stderr)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        python = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "uv"], check=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as exc:  # e.g. Debian without python3-venv
        print(f"private venv failed ({exc}); trying pip install --user uv", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--user", "uv"]
        subprocess.run(pip, check=True)  # noqa: S603 (our own fixed command line)
    uv = find_uv()
    if uv is None:
        raise SystemExit("could not install uv; install it yourself: python3 -m pip install uv")
    return uv


def command(action: str, args: list[str]) -> list[str]:
    """The `uv run` command line for an action."""
    if action == "serve":
        return ["run", "--no-dev", "python", "main.py", *args]
    if action == "test":
        return ["run", "--group", "dev", "pytest", *args]
    raise SystemExit(USAGE)


def main(argv: list[str]) -> None:
    """Bootstrap uv, then exec the action."""
    if not argv:
        raise SystemExit(USAGE)
    uv = find_uv() or install_uv()
    os.chdir(ROOT)
    line = [uv, *command(argv[0], argv[1:])]
    sys.stdout.flush()
    os.execv(uv, line)  # noqa: S606 (replace this process with uv)


if __name__ == "__main__":
    main(sys.argv[1:])
