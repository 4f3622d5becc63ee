"""Columns for migrations, written as a table's listing: ``name type`` items,
separated by commas or new lines, in the table's order (like SQL's column list).

A migration states the columns it creates; this turns the listing into the same
``sa.Column`` objects the long form builds, so a migration reads like the schema
and the DDL stays what it was. Grammar of an item::

    name type[?] [= 'server default']

``type`` is ``str(N)``, ``text``, ``int``, ``serial`` (an integer key the database
numbers), ``bigint``, ``float``, ``bool``, ``bytes`` or ``ts`` (a UTC-aware
timestamp); ``?`` makes the column nullable; ``#`` starts a comment to the end of
the line (so a default cannot hold ``#`` or ``,``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

import sqlalchemy as sa

_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "text": sa.Text,
    "int": sa.Integer,
    "serial": sa.Integer,
    "bigint": sa.BigInteger,
    "float": sa.Float,
    "bool": sa.Boolean,
    "bytes": sa.LargeBinary,
}
_ITEM = re.compile(
    r"^(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>[a-z]+)(?:\((?P<length>\d+)\))?(?P<null>\?)?"
    r"(?:\s*=\s*(?P<default>'[^']*'))?$"
)


def column(item: str) -> sa.Column[Any]:
    """One column from one listing item (see the module's grammar)."""
    line = item.strip()
    match = _ITEM.match(line)
    if match is None:
        raise ValueError(f"not a column: {item!r}")
    name, kind, length = match["name"], match["type"], match["length"]
    type_: sa.types.TypeEngine[Any]
    if kind == "str":
        if length is None:
            raise ValueError(f"str needs a length: {line!r}")
        type_ = sa.String(int(length))
    elif kind == "ts" and length is None:
        type_ = sa.DateTime(timezone=True)
    elif kind in _TYPES and length is None:
        type_ = _TYPES[kind]()
    else:
        raise ValueError(f"unknown column type in {line!r}")
    options: dict[str, Any] = {"nullable": match["null"] is not None}
    if kind == "serial":
        options["autoincrement"] = True
    if match["default"] is not None:
        options["server_default"] = ast.literal_eval(match["default"])
    return sa.Column(name, type_, **options)


def columns(listing: str) -> list[sa.Column[Any]]:
    """The columns of a listing, in its order; comments and empty items skipped."""
    code = (line.split("#", 1)[0] for line in listing.splitlines())
    return [column(item) for line in code for item in line.split(",") if item.strip()]
