"""Configuration of mt5-copier: one TOML file, validated into frozen, typed objects.

``load_config(path)`` reads a file; ``parse_config(data, base_dir=...)`` validates an already-parsed
dict. Both raise ``ConfigError`` listing every problem found. Every key is declared once, in ``config/model.py``;
``config/example.toml`` and the README's configuration tables document them (the tests hold them to it).
"""

from .checks import config_notes
from .choices import (
    Backend,
    ExpirationFallback,
    OrderKind,
    OrphanPolicy,
    OutOfBounds,
    PriceMode,
    Role,
    SourceClose,
    SourceFill,
    VolumeMode,
    VolumeRounding,
)
from .errors import ConfigError, ConfigProblem
from .loader import EXAMPLE_CONFIG_PATH, load_config, parse_config
from .model import (
    AlertsConfig,
    AppConfig,
    CoordinatorConfig,
    CopySettings,
    FilterSettings,
    MetricsConfig,
    OrphanSettings,
    PositionSettings,
    RiskSettings,
    TargetConfig,
    TerminalConfig,
)

__all__ = [
    "EXAMPLE_CONFIG_PATH",
    "AlertsConfig",
    "AppConfig",
    "Backend",
    "ConfigError",
    "ConfigProblem",
    "CoordinatorConfig",
    "CopySettings",
    "ExpirationFallback",
    "FilterSettings",
    "MetricsConfig",
    "OrderKind",
    "OrphanPolicy",
    "OrphanSettings",
    "OutOfBounds",
    "PositionSettings",
    "PriceMode",
    "RiskSettings",
    "Role",
    "SourceClose",
    "SourceFill",
    "TargetConfig",
    "TerminalConfig",
    "VolumeMode",
    "VolumeRounding",
    "config_notes",
    "load_config",
    "parse_config",
]
