"""Which module speaks to the terminal: the real MetaTrader5 package, or the mt5sim simulator."""

from __future__ import annotations

import importlib
from types import ModuleType


class BackendUnavailable(Exception):
    pass


def load_backend(backend: str) -> ModuleType:
    if backend == "sim":
        return importlib.import_module("mt5sim")
    if backend == "mt5":
        try:
            return importlib.import_module("MetaTrader5")
        except ImportError as e:
            raise BackendUnavailable(
                "backend 'mt5' needs the MetaTrader5 package, which exists only for Windows "
                f"(pip install MetaTrader5); here it could not be imported ({e}). "
                "Use backend = 'sim' to run against simulated terminals."
            ) from e
    raise BackendUnavailable(f"unknown backend {backend!r}: expected 'mt5' or 'sim'")
