"""The layout of the config file: which tables it has, each holding the keys declared in ``config/model.py``.

Nothing here declares a key: the tables are derived from the model's declarations (``config/settings.py``).
What is written here is how the tables are put together: a [[targets]] table holds a terminal's keys and
the copy keys side by side, and advice for tempting wrong keys.
"""

from __future__ import annotations

from .model import AlertsConfig, CoordinatorConfig, CopySettings, MetricsConfig, OrphanSettings, TerminalConfig
from .schema import ArrayOfTables, Field, Table
from .settings import schema_fields, table_of

_TERMINAL_KEY_HINTS = (
    (
        "password",
        "passwords never go in the config file: put it in an environment variable and "
        "name that variable in password_env",
    ),
)

COORDINATOR = table_of(CoordinatorConfig)
ALERTS = table_of(AlertsConfig)
METRICS = table_of(MetricsConfig)
ORPHANS = table_of(OrphanSettings)
SOURCE = table_of(TerminalConfig, key_hints=_TERMINAL_KEY_HINTS)
TARGET = Table(fields=schema_fields(TerminalConfig) + schema_fields(CopySettings), key_hints=_TERMINAL_KEY_HINTS)

APP = Table(
    fields=(
        Field(name="coordinator", spec=COORDINATOR, description="the coordinator process"),
        Field(name="source", spec=SOURCE, required=True, description="the terminal whose orders are copied"),
        Field(
            name="targets",
            spec=ArrayOfTables(table=TARGET, min_items=1),
            required=True,
            description="the terminals orders are copied to",
        ),
        Field(name="alerts", spec=ALERTS, description="where a person is told of what needs them"),
        Field(name="metrics", spec=METRICS, description="Prometheus metrics and the status page"),
    )
)
