"""Compile ``wsgen.c`` on demand with the system C compiler into a per-user cache directory.

No binary is committed: the cache entry is named after a hash of the source, the compiler
and its flags, so an edited source or another compiler builds afresh, and concurrent
builds (several bench processes) never see a half-written file (build to a temporary
name, then an atomic rename).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgen.c")
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra")
# Compilers tried in this order when $CC is not set.
COMPILERS = ("cc", "gcc", "clang")


class NativeUnavailable(RuntimeError):
    """The native generator cannot be built here (no compiler, or it failed); says why."""


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "uvgate-bench")


def find_compiler() -> str | None:
    cc = os.environ.get("CC", "").strip()
    if cc:
        return shutil.which(cc.split()[0])
    for name in COMPILERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _compiler_id(cc: str) -> str:
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return r.stdout.splitlines()[0] if r.stdout else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def build_generator(force: bool = False, directory: str | None = None) -> str:
    """Path of the built ``wsgen`` (compiled now if needed); raises ``NativeUnavailable``."""
    cc = find_compiler()
    if cc is None:
        raise NativeUnavailable(
            "no C compiler found ($CC, cc, gcc or clang; on Debian: apt-get install build-essential)"
        )
    with open(SOURCE, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(
        source + _compiler_id(cc).encode() + " ".join(CFLAGS).encode()
    ).hexdigest()[:16]
    out_dir = directory or cache_dir()
    binary = os.path.join(out_dir, f"wsgen-{digest}")
    if not force and os.access(binary, os.X_OK):
        return binary
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".wsgen-", dir=out_dir)
    os.close(fd)
    try:
        r = subprocess.run(
            [cc, *CFLAGS, "-o", tmp, SOURCE], capture_output=True, text=True, timeout=120
        )
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise NativeUnavailable(f"{os.path.basename(cc)} failed: {' '.join(msg[-3:])[:300]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)  # atomic: a concurrent build sees the old or the new file
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeUnavailable(f"cannot build the native generator: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return binary
