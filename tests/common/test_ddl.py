"""The migrations' column listing builds the columns the long form does."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from services.common.ddl import column, columns


def _ddl(*cols: sa.schema.SchemaItem) -> tuple[str, str]:
    table = sa.Table("t", sa.MetaData(), *cols)
    create = CreateTable(table)
    on_sqlite = create.compile(dialect=sqlite.dialect())
    on_postgres = create.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    return str(on_sqlite), str(on_postgres)


def test_a_listing_builds_the_same_ddl_as_the_long_form() -> None:
    listing = """
        id serial, name str(64), note text?,  # a comment, with a comma
        score float, n int?, big bigint, ok bool, blob bytes?,
        at ts, gone_at ts?, source str(16) = 'generated', empty str(8) = ''
    """
    long_form: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("big", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(16), nullable=False, server_default="generated"),
        sa.Column("empty", sa.String(8), nullable=False, server_default=""),
    ]
    built = columns(listing)
    assert [c.name for c in built] == [c.name for c in long_form]
    assert _ddl(*built, sa.PrimaryKeyConstraint("id")) == _ddl(
        *long_form, sa.PrimaryKeyConstraint("id")
    )
    assert built[0].autoincrement is True
    assert built[-2].server_default is not None


def test_columns_keep_the_listing_order_over_lines() -> None:
    assert [c.name for c in columns("b int,\n a int\n c text")] == ["b", "a", "c"]


@pytest.mark.parametrize(
    "item",
    ["name", "name str", "name varchar(5)", "name text(5)", "Name int", "name int = 3", "a b c"],
)
def test_a_malformed_item_is_refused(item: str) -> None:
    with pytest.raises(ValueError, match=r"column|length"):
        column(item)
