"""The configuration reference of README.md, generated from ``gateway.config.Config``.

    python -m gateway.docs                      # print the markdown table
    python -m gateway.docs --check README.md    # exit 1 if the README's table differs
    python -m gateway.docs --write README.md    # replace the README's table in place

The table sits between ``<!-- config-table:start -->`` and ``<!-- config-table:end -->``;
``tests/test_docs.py`` runs the check, so an option added to ``Config`` (or a changed
default or help line) fails the tests until the README is regenerated.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from collections.abc import Sequence
from typing import Any

from gateway.config import Config, env_name, flag_name, kind_of, range_text

START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"

HEADER = (
    "| option | type | default | environment | flag | description |",
    "|---|---|---|---|---|---|",
)
NONE = "—"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"option {f.name!r} has no default")


def format_default(value: Any) -> str:
    """A default as it would be written in the TOML file (``None``: unset)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[]`" if not value else f"`{value!r}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value!r}`"
    return f"`{value}`"


def _flag(f: dataclasses.Field[Any]) -> str:
    if not f.metadata.get("cli", True):
        return NONE
    flag = flag_name(f.name)
    if kind_of(f.name)[0] == "bool":
        return f"`{flag}` / `--no-{flag[2:]}`"
    return f"`{flag}`"


def _env(f: dataclasses.Field[Any]) -> str:
    if not f.metadata.get("env", True):
        return NONE
    return f"`{env_name(f.name)}`"


def _type(f: dataclasses.Field[Any]) -> str:
    """The type, and the accepted range of a number (values outside it are refused)."""
    bounds = range_text(f.name)
    kind = f"`{_cell(str(f.type))}`"
    return f"{kind} {_cell(bounds)}" if bounds else kind


def config_rows() -> list[str]:
    rows = []
    for f in Config.option_fields():
        cells = (
            f"`{f.name}`",
            _type(f),
            format_default(_default_of(f)),
            _env(f),
            _flag(f),
            _cell(str(f.metadata.get("help", ""))),
        )
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def config_table() -> str:
    """The markdown table of every ``Config`` option, one per row, newline-terminated."""
    return "\n".join((*HEADER, *config_rows())) + "\n"


def extract(text: str) -> str | None:
    """The text between the markers (without them), or None if they are missing."""
    start = text.find(START)
    end = text.find(END, start + len(START)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return text[start + len(START) : end]


def replace(text: str, table: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    if extract(text) is None:
        raise ValueError(f"markers {START} ... {END} not found")
    start = text.index(START) + len(START)
    end = text.index(END, start)
    return text[:start] + "\n" + table + text[end:]


def check(text: str) -> list[str]:
    """Differences between the document's table and the generated one (empty: in sync)."""
    found = extract(text)
    if found is None:
        return [f"markers {START} ... {END} not found"]
    want = config_table()
    have = found.strip("\n") + "\n"
    if have == want:
        return []
    return list(
        difflib.unified_diff(
            have.splitlines(), want.splitlines(), "README table", "Config", lineterm=""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.docs",
        description="Print the configuration reference table generated from gateway.config.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="FILE", help="exit 1 if FILE's table differs")
    mode.add_argument("--write", metavar="FILE", help="replace FILE's table in place")
    args = parser.parse_args(argv)
    if args.check:
        with open(args.check, encoding="utf-8") as fh:
            problems = check(fh.read())
        if problems:
            print(f"{args.check}: the configuration table is out of date:", file=sys.stderr)
            for line in problems:
                print(line, file=sys.stderr)
            print(f"regenerate it: python -m gateway.docs --write {args.check}", file=sys.stderr)
            return 1
        return 0
    if args.write:
        with open(args.write, encoding="utf-8") as fh:
            text = fh.read()
        try:
            updated = replace(text, config_table())
        except ValueError as exc:
            print(f"{args.write}: {exc}", file=sys.stderr)
            return 1
        if updated != text:
            with open(args.write, "w", encoding="utf-8") as fh:
                fh.write(updated)
        return 0
    sys.stdout.write(config_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
