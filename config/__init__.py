"""Configuration of mt5-copier: one TOML file, validated into frozen, typed objects.

``load_config(path)`` reads a file; ``parse_config(data, base_dir=...)`` validates an already-parsed
dict. Both raise ``ConfigError`` listing every problem found. ``config/example.toml`` documents every key.
"""

from .checks import config_notes
from .errors import ConfigError, ConfigProblem
from .loader import EXAMPLE_CONFIG_PATH, load_config, parse_config
from .model import (
    AppConfig,
    Backend,
    CoordinatorConfig,
    CopySettings,
    ExpirationFallback,
    OrderKind,
    OrphanPolicy,
    OrphanSettings,
    OutOfBounds,
    PriceMode,
    Role,
    TargetConfig,
    TerminalConfig,
    VolumeMode,
    VolumeRounding,
)

__all__ = [
    "EXAMPLE_CONFIG_PATH",
    "AppConfig",
    "Backend",
    "ConfigError",
    "ConfigProblem",
    "CoordinatorConfig",
    "CopySettings",
    "ExpirationFallback",
    "OrderKind",
    "OrphanPolicy",
    "OrphanSettings",
    "OutOfBounds",
    "PriceMode",
    "Role",
    "TargetConfig",
    "TerminalConfig",
    "VolumeMode",
    "VolumeRounding",
    "config_notes",
    "load_config",
    "parse_config",
]
