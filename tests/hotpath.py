"""Which form of the hot path the tests run against, and whether it is current.

``make test`` runs the suite twice: against the compiled hot path
(``UVGATE_EXPECT_COMPILED=1``: refuse to run if it is not built) and against the
pure-Python twin (``UVGATE_PURE_PYTHON=1``). A compiled module older than its ``.py``
or ``.pxd`` (or ``.c``) would test yesterday's code: the run stops and says ``make build``.
"""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "protocol")


def extensions() -> list[Path]:
    """The compiled modules beside the sources (an editable or in-place build)."""
    found: set[Path] = set()
    for package in PACKAGES:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            found.update((ROOT / package).rglob(f"*{suffix}"))
    return sorted(found)


def source_of(extension: Path) -> Path:
    return extension.with_name(extension.name.split(".", 1)[0] + ".py")


def stale() -> list[str]:
    """Compiled modules older than their .py (or .pxd) source, or their hand-written .c."""
    out = []
    for ext in extensions():
        built = ext.stat().st_mtime
        py = source_of(ext)
        for src in (py, py.with_suffix(".pxd"), py.with_suffix(".c")):
            if src.exists() and src.stat().st_mtime > built:
                out.append(str(src.relative_to(ROOT)))
    return out


def forced_pure() -> bool:
    return os.environ.get("UVGATE_PURE_PYTHON", "") not in ("", "0")


def describe_hot_path() -> str:
    from gateway.connection import HOT_PATH

    why = ""
    if HOT_PATH != "compiled":
        why = " (UVGATE_PURE_PYTHON=1)" if forced_pure() else " (not built)"
    return f"uvgate hot path: {HOT_PATH}{why}, {len(extensions())} compiled modules on disk"


def check_hot_path() -> str | None:
    """Why the suite must not run as it stands, or None."""
    from gateway.connection import HOT_PATH

    if os.environ.get("UVGATE_EXPECT_COMPILED") == "1" and HOT_PATH != "compiled":
        return "UVGATE_EXPECT_COMPILED=1 but the compiled hot path is not loaded (make build)"
    if not forced_pure():
        old = stale()
        if old:
            return (
                f"the compiled hot path is older than {', '.join(old[:3])}"
                f"{' ...' if len(old) > 3 else ''}: run `make build` "
                "(or UVGATE_PURE_PYTHON=1 to test the pure-Python twin)"
            )
    return None
