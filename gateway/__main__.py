"""``python -m gateway``: the ``uvgate`` command.

Python puts the working directory first on ``sys.path`` for ``-m``. Unless uvgate itself
is being run from there (a source checkout), take it off before anything else is
imported, so a ``jwt.py`` or a ``protocol/`` folder where the operator stands cannot
replace PyJWT or uvgate's own packages (as with the ``uvgate`` script; ``import_path``
is how to add a directory on purpose).
"""

import os
import sys
from pathlib import Path

_here = Path(__file__).resolve().parent.parent
if Path.cwd().resolve() != _here:
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]

from gateway.cli import main  # noqa: E402  (after the sys.path fix, on purpose)

sys.exit(main())
