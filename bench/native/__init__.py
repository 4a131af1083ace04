"""The native load generator (``wsgen.c``), built on demand, and its worker driver.

``uvgate-bench --generator auto`` (the default) uses it when a C compiler is found and the
run is one it covers (the native protocol: connect, hold, echo, fanout); otherwise the
Python generator runs and the report says why.
"""

from __future__ import annotations

from .build import NativeUnavailable, build_generator, find_compiler

__all__ = ["NativeUnavailable", "build_generator", "find_compiler"]
