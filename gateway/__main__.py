"""``python -m gateway``: the ``uvgate`` command.

``python -m`` puts the working directory first on ``sys.path``; it is taken off before
anything else is imported, so a ``jwt.py``, ``orjson.py`` or ``protocol/`` where the
operator stands cannot replace PyJWT, orjson or uvgate's own packages (a custom verifier
or app is found through ``import_path``). It stays when uvgate is run from its own
source tree, where it is the package itself.
"""

import os
import sys


def _drop_working_directory() -> None:
    cwd = os.path.realpath(os.getcwd())
    source_root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if source_root != cwd:
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != cwd]


_drop_working_directory()

from gateway.cli import main  # noqa: E402  (after the sys.path fix above)

sys.exit(main())
