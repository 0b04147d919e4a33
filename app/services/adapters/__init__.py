"""App adapters: plain HTTP services declared in `CONFIG_DIR/app/*.json`, offered as tools."""

from app.services.adapters.executor import AdapterTools
from app.services.adapters.loader import Adapter, AdapterConfigError, load_adapters
from app.services.adapters.startup import start_adapter_tools

__all__ = ["Adapter", "AdapterConfigError", "AdapterTools", "load_adapters", "start_adapter_tools"]
