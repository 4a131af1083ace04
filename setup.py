"""Build uvgate: the metadata is in setup.cfg; this file adds the compiled hot path.

The modules of the per-connection and per-message path are compiled by Cython from
their own ``.py`` sources (pure-Python mode: no ``.pyx``, no generated C in the tree;
the C goes to ``build/cython``). The ``.py`` files stay the readable truth and are
installed beside the extensions: when no compiler (or no ``Python.h``) is there, the
build says so in one warning line and uvgate runs the same sources as plain Python.
``UVGATE_PURE_PYTHON=1`` skips compiling here and, at run time, loads the ``.py``
twins even where extensions are installed (``protocol.purepy``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The hot path, in dependency order (see README "Architecture" and bench/callgrind.py).
COMPILED_MODULES = [
    "protocol.closecodes",
    "protocol.handshake",
    "protocol.frames",
    "protocol.codecs",
    "protocol.ids",
    "gateway.connstate",
    "gateway.flow",
    "gateway.stats",
    "gateway.context",
    "gateway.ratelimit",
    "gateway.router",
    "gateway.deadlines",
    "gateway.timers",
    "gateway.fanout",
    "gateway.registry",
    "gateway.tokens",
    "gateway.verifiers.base",
    "gateway.verifiers.hmac_token",
    "gateway.auth",
    "gateway.native",
    "gateway.connection.base",
    "gateway.connection.writer",
    "gateway.connection.closing",
    "gateway.connection.upgrade",
    "gateway.connection.http1",
    "gateway.connection.core",
]

# Hand-written C beside the Cython modules: the request-head scan (protocol/speedups.c),
# a fast path checked against its Python reference (tests/protocol/test_speedups.py).
C_MODULES = [("protocol.speedups", "protocol/speedups.c")]

# Python semantics kept exactly: annotations are documentation for mypy, not C types
# (a ``bytes`` annotation must not start refusing a bytearray), module globals are
# looked up at call time (tests may patch them), functions keep their introspection.
DIRECTIVES = {
    "language_level": 3,
    "annotation_typing": False,
    "binding": True,
    "embedsignature": False,
    "auto_pickle": False,
}


def _warn(reason: str) -> None:
    print(
        f"WARNING: uvgate: compiled hot path not built ({reason}); running as pure Python",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):  # type: ignore[misc]  # untyped setuptools
    """All or nothing: one failure and no extension is kept (never a mixed build)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler or header, a Cython error
            self._discard()
            lines = str(exc).strip().splitlines()
            _warn(f"{type(exc).__name__}: {lines[-1] if lines else 'build failed'}")

    def _discard(self) -> None:
        for ext in list(self.extensions):
            for path in (self.get_ext_fullpath(ext.name),):
                try:
                    os.remove(path)
                except OSError:
                    pass
        self.extensions: list[Any] = []


def extensions() -> list[object]:
    if os.environ.get("UVGATE_PURE_PYTHON") == "1":
        _warn("UVGATE_PURE_PYTHON=1")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed")
        return []
    from setuptools import Extension

    exts = [Extension(name, [name.replace(".", "/") + ".py"]) for name in COMPILED_MODULES]
    try:
        return [
            *cythonize(  # type: ignore[no-untyped-call]
                exts, build_dir="build/cython", compiler_directives=DIRECTIVES, quiet=True
            ),
            *(Extension(name, [source]) for name, source in C_MODULES),
        ]
    except Exception as exc:  # Cython refused a module: build nothing, run the twin
        _warn(f"cythonize failed: {type(exc).__name__}: {exc}")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
