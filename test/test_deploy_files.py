"""Dockerfile, docker-compose.yml and .dockerignore, checked by parsing (no Docker engine here).

When `hadolint` or `docker` happen to be installed they are run as well.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


def compose() -> dict[str, Any]:
    """docker-compose.yml as data (YAML anchors and merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


def test_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    steps = dockerfile_instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert any(re.search(r"\bAS builder$", f, re.IGNORECASE) for f in froms), froms
    runtime_start = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    runtime = steps[runtime_start:]
    assert any(k == "COPY" and "--from=builder" in a for k, a in runtime)
    assert any(k == "RUN" and "uv sync --frozen --no-dev" in a for k, a in steps)

    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [i for i, (k, _) in enumerate(runtime) if k == "USER"][-1] < len(runtime) - 1
    healthchecks = [a for k, a in runtime if k == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/health/live" in healthchecks[0]
    assert "8000" in [a for k, a in runtime if k == "EXPOSE"]
    env = " ".join(a for k, a in runtime if k == "ENV")
    assert "HOST=0.0.0.0" in env and "ENVIRONMENT=production" in env
    cmd = [a for k, a in runtime if k == "CMD"]
    assert cmd and '"main.py", "prod"' in cmd[-1]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret in (".env", ".git", ".venv", "data", "logs"):
        assert secret in ignored
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
            assert not any(
                fnmatch.fnmatch(source, pattern)
                for pattern in ignored
                if not pattern.startswith("!")
            ), f"COPY {source}: excluded by .dockerignore"


def test_compose_runs_backend_after_databases_and_migration() -> None:
    services = compose()["services"]
    assert {"backend", "postgres", "redis", "migrate"} <= set(services)
    backend = services["backend"]
    assert backend["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    migrate = services["migrate"]
    assert "scripts/init_db.py" in " ".join(migrate["command"])
    assert (ROOT / "scripts" / "init_db.py").exists()
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in ("backend", "migrate"):
        env = services[name]["environment"]
        assert env["DB_AUTO_MIGRATE"] == "false"  # only the release step migrates
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["HOST"] == "0.0.0.0"
        assert ":?" in env["SECRET_KEY"]  # compose refuses to start without one
        assert services[name]["build"] == "."
    assert any(str(port).endswith(":8000") for port in backend["ports"])


def test_compose_services_have_healthchecks_and_volumes() -> None:
    data = compose()
    services = data["services"]
    for name in ("backend", "postgres", "redis"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health/live" in " ".join(services["backend"]["healthcheck"]["test"])
    declared = set(data["volumes"])
    used = set()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared, "every named volume is declared and used"
    mounts = {v.split(":")[1] for s in ("postgres", "redis") for v in services[s]["volumes"]}
    assert {"/var/lib/postgresql/data", "/data"} <= mounts


def test_compose_interpolations_are_well_formed() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    for match in re.finditer(r"\$\{([^}]*)\}", text):
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*((:?[-?+]).*)?", match.group(1)), match.group(0)
    assert text.count("${") == len(re.findall(r"\$\{[^}]*\}", text))


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_hadolint_accepts_the_dockerfile() -> None:
    result = subprocess.run(
        ["hadolint", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose_cli() -> list[str] | None:
    """`docker compose` (plugin) or `docker-compose` (Debian package), if either is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


COMPOSE = compose_cli()


@pytest.mark.skipif(COMPOSE is None, reason="neither docker compose nor docker-compose installed")
def test_compose_cli_accepts_the_file(tmp_path: Path) -> None:
    # `config` parses, merges and interpolates like `up` would; it needs no Docker engine.
    assert COMPOSE is not None
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("OPENAI_API_KEY=\n")

    def config() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMPOSE, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    missing = config()
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
    (tmp_path / ".env").write_text("SECRET_KEY=" + "k" * 48 + "\n")
    result = config()
    assert result.returncode == 0, result.stderr
