"""The fuzz targets by name: ``check(data: bytes) -> None`` each (see tests/fuzz/)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASHES_DIR = FUZZ_DIR / "crashes"

TARGETS = (
    "handshake",
    "frames",
    "deflate",
    "codecs",
    "pusher_messages",
    "httpapi",
    "chunked",
    "wsproto_diff",
    "handshake_diff",
)


def load(name: str) -> Callable[[bytes], None]:
    if name not in TARGETS:
        raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}")
    module = importlib.import_module(f"tests.fuzz.fuzz_{name}")
    check: Callable[[bytes], None] = module.check
    return check


def inputs(name: str) -> list[Path]:
    """Every corpus and crash file of ``name``, in a stable order."""
    files = []
    for base in (CORPUS_DIR / name, CRASHES_DIR / name):
        if base.is_dir():
            files += sorted(p for p in base.iterdir() if p.is_file() and not p.name.startswith("."))
    return files
