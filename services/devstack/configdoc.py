"""Configuration tables in the READMEs, generated from the settings classes.

A README marks a table with ``<!-- config:module:Class -->`` ...
``<!-- /config -->``; the rows come from the class's fields and the ``#:``
comment above each. ``make docs`` rewrites them; a test fails when a README
is out of date.

    python -m services.devstack.configdoc --write README.md services/ingest/README.md
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings


def env_names(settings: type[BaseSettings]) -> Iterator[tuple[str, str]]:
    """(environment variable, field name) for every field of ``settings``."""
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        yield (alias if isinstance(alias, str) else f"{prefix}{name}".upper()), name


#: Defaults under the checkout are shown relative to it, so tables do not depend on where
#: the repository lives.
ROOT = Path(__file__).resolve().parents[2]

_FIELD = re.compile(r"^    (\w+)\s*:")


def field_comments(settings: type[BaseSettings]) -> dict[str, str]:
    """The ``#:`` comment lines above each field, joined (the fields' documentation)."""
    comments: dict[str, str] = {}
    for cls in reversed(settings.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)) or cls is BaseSettings:
            continue
        pending: list[str] = []
        for line in inspect.getsource(cls).splitlines():
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
            elif (match := _FIELD.match(line)) and pending:
                comments[match.group(1)] = " ".join(pending)
                pending = []
            elif not stripped.startswith("#"):
                pending = []
    return comments


def table(settings: type[BaseSettings]) -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    fields = settings.model_fields
    comments = field_comments(settings)
    for env, name in env_names(settings):
        field = fields[name]
        if field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        elif isinstance(field.default, SecretStr):
            default = "(secret)"
        else:
            default = (
                ""
                if field.default is None
                else repr(getattr(field.default, "value", field.default))
            )
        default = default.replace(f"{ROOT}/", "").replace(f"PosixPath('{ROOT}')", "'.'")
        meaning = (field.description or comments.get(name, "")).replace("|", "\\|")
        rows.append(f"| `{env}` | `{default}` | {meaning} |")
    return "\n".join(rows)


_BLOCK = re.compile(r"(<!-- config:([\w.]+):(\w+) -->\n)(.*?)(<!-- /config -->)", re.DOTALL)


def render(markdown: str) -> str:
    """``markdown`` with every marked table regenerated."""

    def replace(match: re.Match[str]) -> str:
        settings = getattr(importlib.import_module(match.group(2)), match.group(3))
        return f"{match.group(1)}{table(settings)}\n{match.group(5)}"

    return _BLOCK.sub(replace, markdown)


def main(argv: list[str]) -> int:
    write = "--write" in argv
    stale = []
    for name in (a for a in argv if not a.startswith("--")):
        path = Path(name)
        current = path.read_text(encoding="utf-8")
        fresh = render(current)
        if fresh != current:
            stale.append(name)
            if write:
                path.write_text(fresh, encoding="utf-8")
    if stale and not write:
        sys.stderr.write(f"out of date (run `make docs`): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
