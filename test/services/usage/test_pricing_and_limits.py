"""Model pricing in the config file, quota defaults from the environment, quota windows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.config import Settings
from app.models import User
from app.services.llm import ModelConfigError
from app.services.llm.registry import ModelRegistry
from app.services.usage.quota import limits_for
from app.services.usage.windows import day_of, month_of

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_every_shipped_upstream_model_has_a_price() -> None:
    registry = ModelRegistry.load(REPO_CONFIG, environ={})
    shipped = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    for entry in shipped["models"]:
        model = registry.get(entry["id"])
        assert model is not None
        if entry["provider"] != "echo" and entry["enabled"]:
            assert model.pricing is not None, entry["id"]
            assert entry["pricing"]["as_of"]
    mini = registry.get("gpt-4o-mini")
    assert mini is not None and mini.pricing is not None
    assert mini.pricing.cached_input_per_mtok == 0.075


def test_a_negative_price_names_the_model_and_field(tmp_path: Path) -> None:
    entry = {"id": "m", "provider": "echo", "pricing": {"input_per_mtok": -1, "output_per_mtok": 1}}
    (tmp_path / "model_configs.json").write_text(
        json.dumps({"default_model": "m", "models": [entry]})
    )
    with pytest.raises(ModelConfigError) as raised:
        ModelRegistry.load(tmp_path, environ={})
    assert "model 'm' (models[0]), field 'pricing.input_per_mtok'" in str(raised.value)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_quota_defaults_come_from_the_environment_and_users_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUOTA_TOKENS_PER_DAY", "5000")
    monkeypatch.setenv("QUOTA_COST_PER_MONTH", "")  # empty = unset = unlimited
    settings = _settings()
    assert (settings.quota_tokens_per_day, settings.quota_cost_per_month) == (5000, None)
    user = User(id=uuid.uuid4(), quota_tokens_per_day=None, quota_cost_per_month=2.5)
    limits = limits_for(user, settings)
    assert (limits.tokens_per_day, limits.cost_per_month) == (5000, 2.5)
    user.quota_tokens_per_day = 0
    assert limits_for(user, settings).tokens_per_day == 0
    assert not limits_for(User(id=uuid.uuid4()), _settings(quota_tokens_per_day=None)).any


def test_windows_reset_at_utc_midnight_and_the_first_of_the_month() -> None:
    now = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert day_of(now).key == "d:2026-12-31" and month_of(now).key == "m:2026-12"
    assert day_of(now).seconds_left(now) == 30
    assert month_of(now).end == datetime(2027, 1, 1, tzinfo=UTC)
    mid = datetime(2026, 11, 15, 12, 0, 0, 500000, tzinfo=UTC)
    assert day_of(mid).seconds_left(mid) == 12 * 3600
