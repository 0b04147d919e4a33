"""The configured models, their availability, and the providers (with pooled HTTP sessions)."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from app.services.llm.anthropic import AnthropicProvider
from app.services.llm.base import ModelConfig, Provider
from app.services.llm.echo import EchoProvider
from app.services.llm.google import GoogleProvider
from app.services.llm.openai import OpenAIProvider
from app.services.llm.openai_responses import OpenAIResponsesProvider
from app.services.llm.schema import load_model_file
from app.services.llm.transport import new_session

MODEL_CONFIG_FILE = "model_configs.json"
ECHO_MODEL_ID = "vektor-echo"


class ModelRegistry:
    """Models from `config/model_configs.json`; created once and owned by the lifespan."""

    def __init__(
        self,
        *,
        models: builtins.list[ModelConfig],
        default_model: str,
        environ: Mapping[str, str] | None = None,
        source: Path | None = None,
    ) -> None:
        """Hold validated models; `environ` (default `os.environ`) is read at call time."""
        self._models = {model.id: model for model in models}
        self._configured_default = default_model
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.source = source
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._providers: dict[str, Provider] = {"echo": EchoProvider(environ=self._environ)}

    @classmethod
    def load(cls, config_dir: Path, *, environ: Mapping[str, str] | None = None) -> ModelRegistry:
        """Validate `config_dir/model_configs.json`; a bad file raises `ModelConfigError`."""
        path = Path(config_dir) / MODEL_CONFIG_FILE
        default_model, models = load_model_file(path)
        registry = cls(models=models, default_model=default_model, environ=environ, source=path)
        available = [m.id for m in models if registry.is_available(m.id)]
        logger.info(
            "Loaded {} models from {} (available: {}; default: {})",
            len(models),
            path,
            ", ".join(available) or "none",
            registry.default_id,
        )
        return registry

    async def start(self) -> None:
        """Open one pooled HTTP session per networked provider kind (idempotent)."""
        if self._sessions:
            return
        openai_session = new_session()
        anthropic_session = new_session()
        self._sessions = {"openai": openai_session, "anthropic": anthropic_session}
        self._providers["openai"] = OpenAIProvider(session=openai_session, environ=self._environ)
        self._providers["anthropic"] = AnthropicProvider(
            session=anthropic_session, environ=self._environ
        )
        self._start_newer_providers()

    def _start_newer_providers(self) -> None:
        """The Responses API shares OpenAI's hosts; Gemini gets a pool of its own."""
        google_session = new_session()
        self._sessions["google"] = google_session
        self._providers["openai_responses"] = OpenAIResponsesProvider(
            session=self._sessions["openai"], environ=self._environ
        )
        self._providers["google"] = GoogleProvider(session=google_session, environ=self._environ)

    async def aclose(self) -> None:
        """Close the HTTP sessions (in-flight streams fail with `upstream_unavailable`)."""
        sessions, self._sessions = self._sessions, {}
        for kind in ("openai", "anthropic", "openai_responses", "google"):
            self._providers.pop(kind, None)
        for session in sessions.values():
            await session.close()

    def get(self, model_id: str) -> ModelConfig | None:
        """The model with this id, enabled or not."""
        return self._models.get(model_id)

    def is_available(self, model_id: str) -> bool:
        """Enabled, and its API key variable (if it needs one) is set and non-empty."""
        model = self._models.get(model_id)
        if model is None or not model.enabled:
            return False
        if model.provider == "echo" or not model.api_key_env:
            return True
        return bool(self._environ.get(model.api_key_env, "").strip())

    @property
    def default_id(self) -> str:
        """The file's default if available, else the echo model, else the first available one.

        When nothing is available the file's default is returned; using it then fails
        with `model_unavailable`, which tells the operator what to configure.
        """
        if self.is_available(self._configured_default):
            return self._configured_default
        if self.is_available(ECHO_MODEL_ID):
            return ECHO_MODEL_ID
        for model_id in self._models:
            if self.is_available(model_id):
                return model_id
        return self._configured_default

    def provider_for(self, model: ModelConfig) -> Provider:
        """The provider that streams `model`; networked ones need `start()` first."""
        provider = self._providers.get(model.provider)
        if provider is None:
            raise RuntimeError(
                f"ModelRegistry.start() was not called: no HTTP session for {model.provider!r}"
            )
        return provider

    def describe(self) -> builtins.list[dict[str, Any]]:
        """The enabled models as `GET /chat/models` items (disabled ones are hidden)."""
        default = self.default_id
        return [
            {
                "id": model.id,
                "name": model.name,
                "provider": model.provider,
                "context_window": model.context_window,
                "supports_tools": model.supports_tools,
                "supports_vision": model.supports_vision,
                "available": self.is_available(model.id),
                "default": model.id == default,
            }
            for model in self._models.values()
            if model.enabled
        ]

    def list(self) -> builtins.list[ModelConfig]:
        """Every configured model in file order, enabled or not."""
        return builtins.list(self._models.values())
