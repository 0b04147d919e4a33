"""Write `.env` from `.env.example` with a fresh SECRET_KEY and copy example config files.

    uv run python scripts/init_config.py            # create what is missing
    uv run python scripts/init_config.py --force    # also replace .env (a new SECRET_KEY)

Example config files are `config/**/*.example.json`; each is copied to the same relative
place under `CONFIG_DIR` without `.example` (`config/mcp_servers.example.json` →
`$CONFIG_DIR/mcp_servers.json`) only where that file is missing. Config files are never
overwritten, not even with `--force`: some are shipped in the repository (`config/mcp_servers.json`
runs mcp-server-time) and others hold the operator's edits; delete one to get the example
again. `--force` only regenerates `.env`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SUFFIX = ".example.json"
_SECRET_LINE = re.compile(r"^SECRET_KEY=[ \t]*$", re.MULTILINE)


def render_env(example: str, key: str) -> str:
    """The example text with its empty `SECRET_KEY=` line filled in."""
    rendered, count = _SECRET_LINE.subn(f"SECRET_KEY={key}", example, count=1)
    if count == 0:
        rendered = example.rstrip("\n") + f"\nSECRET_KEY={key}\n"
    return rendered


def write_env(*, example: Path, target: Path, force: bool) -> str:
    """Create `target` (mode 0600, it holds the key); returns what happened."""
    if target.exists() and not force:
        return f"kept     {target} (exists; --force to replace it and its SECRET_KEY)"
    if not example.is_file():
        raise FileNotFoundError(f"{example} not found")
    text = render_env(example.read_text(encoding="utf-8"), secrets.token_urlsafe(48))
    target.parent.mkdir(parents=True, exist_ok=True)
    existed = target.exists()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(target, 0o600)
    verb = "replaced" if existed else "wrote   "
    return f"{verb} {target} with a new SECRET_KEY"


def copy_examples(*, examples_dir: Path, config_dir: Path) -> list[str]:
    """Copy every `*.example.json` into `config_dir` where missing; one line per file."""
    if not examples_dir.is_dir():
        return [f"no example config directory at {examples_dir}"]
    sources = sorted(examples_dir.rglob(f"*{EXAMPLE_SUFFIX}"))
    if not sources:
        return [f"no example config files in {examples_dir}"]
    lines = []
    for source in sources:
        relative = source.relative_to(examples_dir)
        target = config_dir / relative.parent / (source.name[: -len(EXAMPLE_SUFFIX)] + ".json")
        if target.exists():  # shipped or edited: never replaced (delete it to start over)
            lines.append(f"kept     {target} (exists; delete it to copy the example again)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        lines.append(f"copied   {source} -> {target}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing .env (new SECRET_KEY); config files are never overwritten",
    )
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="the .env to write")
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="where config files go (default: $CONFIG_DIR, else ./config)",
    )
    parser.add_argument(
        "--examples-dir", type=Path, default=ROOT / "config", help="where *.example.json live"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Create `.env` and the config files; exit 1 if something could not be written."""
    args = parse_args(argv)
    config_dir = args.config_dir or Path(os.environ.get("CONFIG_DIR") or "config")
    try:
        print(write_env(example=args.example, target=args.env_file, force=args.force))
        for line in copy_examples(examples_dir=args.examples_dir, config_dir=config_dir):
            print(line)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
