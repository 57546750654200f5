"""Config keys declared once, as fields of the typed model, and what is derived from those declarations.

A key is a field of a ``@config_table`` dataclass (``config/model.py``) whose value is ``setting(...)``:
its spec (type, bounds, checks, whether it is secret), its default and its description sit in the field's
metadata. From them come the schema the file is validated against (``table_of``), the typed object built
from the validated values (``build``) and the default the documentation states (``documented_default``).
A key without a default is required; the dataclass gets the same default as the file, so code that builds
settings by hand cannot drift from a config file that leaves the key out.

The declaration is shaped like pydantic's ``Field(...)``, but the validation behind it is this package's own
(``config/schema.py`` says why).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from .paths import resolve_path
from .schema import Field, Spec, String, Table

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
elif TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # Python 3.10 at run time: the decorator only informs type checkers, and typing_extensions is no dependency

    def dataclass_transform(**_kwargs: Any) -> Any:
        return lambda decorated: decorated


_T = TypeVar("_T")


class _NoDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Final = _NoDefault()
"""The default of a required key."""

_METADATA_KEY: Final = "config.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """The declaration of one config key, kept in the metadata of its dataclass field."""

    spec: Spec | type  # a Spec, or the @config_table class of a sub-table such as [targets.orphans]
    default: Any  # as the file gives it, once validated; NO_DEFAULT: the key is required
    doc: str
    key: str  # the key's name in the file, when it is not the attribute's name
    shown_default: str | None  # how the documentation states a default that is no plain TOML value
    is_path: bool  # the attribute is the value resolved against the config file's folder


@overload
def setting(
    spec: Spec | type, *, default: _T, doc: str, key: str = "", shown_default: str | None = None, secret: bool = False
) -> _T: ...


@overload
def setting(spec: Spec | type, *, doc: str, key: str = "") -> Any: ...


def setting(
    spec: Spec | type, *, default: Any = NO_DEFAULT, doc: str, key: str = "", shown_default: str | None = None,
    secret: bool = False,
) -> Any:
    """A config key, held as it is by its attribute; required unless it has a ``default``.

    ``spec`` is a schema spec, or a ``@config_table`` class for a sub-table (give its ``default`` as the class
    built with no arguments). ``key`` names the key when it differs from the attribute. ``shown_default``
    is for the documentation, when the default is no plain value (``"all six"``). ``secret``: the value may
    hold a secret (an alert URL's token), so the object's repr leaves it out and it can still be logged.
    """
    declared = Setting(spec, default, doc, key, shown_default, is_path=False)
    metadata = {_METADATA_KEY: declared}
    if default is NO_DEFAULT:
        return dataclasses.field(metadata=metadata, repr=not secret)
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def path_setting(
    *,
    file_default: str | _NoDefault | None = NO_DEFAULT,
    default: _NoDefault | None = NO_DEFAULT,
    doc: str,
    key: str = "",
) -> Any:
    """A key naming a file or folder; the attribute is an absolute ``Path``, resolved against the config
    file's folder (``config.paths.resolve_path``). ``file_default`` is the file's default: the attribute
    has none, since where a relative path points depends on the file.

    An optional path (absent: None, in the file and in the attribute alike) says ``default=None``, which
    also tells type checkers the attribute may be left out; ``file_default=None`` means the same.
    """
    optional = default is None or file_default is None
    declared = Setting(String(non_empty=True), None if optional else file_default, doc, key, None, is_path=True)
    if optional:
        return dataclasses.field(default=None, metadata={_METADATA_KEY: declared})
    return dataclasses.field(metadata={_METADATA_KEY: declared})


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(setting, path_setting))
def config_table(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen, keyword-only dataclass: hashable, safe to share, its fields config keys."""
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


def declared_settings(cls: type) -> Iterator[tuple[str, Setting]]:
    """(attribute name, declaration) of every key of a config table class, in declaration order."""
    for field in dataclasses.fields(cls):
        declared = field.metadata.get(_METADATA_KEY)
        if isinstance(declared, Setting):
            yield field.name, declared


def key_name(attribute: str, declared: Setting) -> str:
    """The key's name in the file."""
    return declared.key or attribute


def schema_fields(cls: type) -> tuple[Field, ...]:
    """The schema fields of every key of ``cls``, in declaration order (the order problems are reported in)."""
    return tuple(_schema_field(attribute, declared) for attribute, declared in declared_settings(cls))


def _schema_field(attribute: str, declared: Setting) -> Field:
    name, required = key_name(attribute, declared), declared.default is NO_DEFAULT
    if isinstance(declared.spec, type):  # an absent sub-table is validated as empty: its keys' defaults
        return Field(name=name, spec=table_of(declared.spec), required=required, description=declared.doc)
    default = None if required else declared.default
    return Field(name=name, spec=declared.spec, required=required, default=default, description=declared.doc)


def table_of(cls: type, key_hints: tuple[tuple[str, str], ...] = ()) -> Table:
    """The schema of a table holding the keys of ``cls``."""
    return Table(fields=schema_fields(cls), key_hints=key_hints)


def build(cls: type[_T], table: Mapping[str, Any], base_dir: Path, **others: Any) -> _T:
    """An instance of ``cls`` from a validated table: each key's value, sub-tables built, paths resolved.

    ``others`` are the attributes that are not keys (a terminal's role); ``base_dir`` is the config
    file's folder. ``table`` may hold more keys (a target's table has terminal and copy keys).
    """
    values = dict(others)
    for attribute, declared in declared_settings(cls):
        if attribute in values:
            raise TypeError(f"{cls.__name__}.{attribute} is a config key: it is read from the table, not given")
        value = table[key_name(attribute, declared)]
        if isinstance(declared.spec, type):
            value = build(declared.spec, value, base_dir)
        elif declared.is_path and value is not None:  # an optional path left out stays None
            value = resolve_path(base_dir, value)
        values[attribute] = value
    return cls(**values)


def documented_default(declared: Setting) -> str:
    """The default as the README's configuration tables state it: ``5.0``, ``"INFO"``, required, none."""
    if declared.shown_default is not None:
        return declared.shown_default
    default = declared.default
    if default is NO_DEFAULT:
        return "required"
    if default is None or (isinstance(default, tuple) and not default):  # an absent or empty symbol map
        return "none"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, str):
        return json.dumps(default, ensure_ascii=False)
    if isinstance(default, int | float):
        return repr(default)
    raise TypeError(f"no plain way to show the default {default!r}: declare it with shown_default=...")
