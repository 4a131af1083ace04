"""The compiled hot path and its pure-Python twin: which one runs.

The hot-path modules of ``protocol/`` and ``gateway/`` are compiled by Cython from their
own ``.py`` sources when uvgate is built with a compiler (``setup.py``); the extension
sits beside the source and Python's import system prefers it. ``UVGATE_PURE_PYTHON=1``
in the environment forces the twin: this module, imported first by ``protocol``,
installs a finder that loads every ``protocol.*`` module from its ``.py`` source
(``gateway.purepy`` does the same for ``gateway``), so the whole process runs one form,
never a mix.

``compiled(module)`` says which form one module runs; ``gateway.connection.HOT_PATH``
says it of the whole hot path (the start-up line, ``uvgate_build_info`` in ``/metrics``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

__all__ = ["ENV", "FORCED", "SourceFirst", "compiled"]

ENV = "UVGATE_PURE_PYTHON"
FORCED = os.environ.get(ENV, "") not in ("", "0")
_PACKAGES = ("protocol.",)  # gateway/purepy.py does the same for gateway


class SourceFirst:
    """A meta path finder: modules of uvgate's packages from ``.py`` (the twin), never
    from a compiled extension. Packages fall through to the normal finders."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith(_PACKAGES):
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def compiled(module: ModuleType) -> bool:
    """True if ``module`` was loaded from a compiled extension."""
    origin = getattr(module.__spec__, "origin", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


if FORCED and not any(isinstance(f, SourceFirst) for f in sys.meta_path):
    # Just before the path finder, which would find the extension first; not at the
    # front: an import hook that wraps the finders after it (atheris instruments the
    # modules they find, for coverage-guided fuzzing) must still see these modules.
    _at = sys.meta_path.index(PathFinder) if PathFinder in sys.meta_path else 0
    sys.meta_path.insert(_at, SourceFirst())
