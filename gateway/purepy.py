"""``UVGATE_PURE_PYTHON=1`` for the ``gateway`` package: its modules load from ``.py``.

The same finder as ``protocol.purepy`` (which covers ``protocol``), kept apart because
``gateway/__init__`` must import nothing outside ``gateway`` before ``gateway/__main__``
has taken the working directory off ``sys.path`` (a ``protocol/`` folder where the
operator stands must not be imported).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

__all__ = ["FORCED", "GatewaySourceFirst"]

FORCED = os.environ.get("UVGATE_PURE_PYTHON", "") not in ("", "0")


class GatewaySourceFirst:
    """Modules of ``gateway`` from their ``.py`` source, never a compiled extension."""

    @staticmethod
    def find_spec(
        fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith("gateway."):
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


if FORCED and not any(isinstance(f, GatewaySourceFirst) for f in sys.meta_path):
    # Just before the path finder, which would find the extension first; not at the
    # front: an import hook that wraps the finders after it (atheris instruments the
    # modules they find, for coverage-guided fuzzing) must still see these modules.
    _at = sys.meta_path.index(PathFinder) if PathFinder in sys.meta_path else 0
    sys.meta_path.insert(_at, GatewaySourceFirst())
