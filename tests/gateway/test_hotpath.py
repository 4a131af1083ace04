"""The compiled hot path and its pure-Python twin: one form per process, said where it
shows, a build that falls back in one line, and the HMAC key states equal to hmac."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import Config
from gateway.connection import HOT_PATH
from gateway.server import Gateway
from gateway.tokens import TokenKey
from tests.hotpath import ROOT, extensions

# Every module of the two packages a process loaded, and whether it came compiled.
FORMS = """
import json, sys
import gateway.server, gateway.connection
from protocol.purepy import compiled
mods = {n: compiled(m) for n, m in sys.modules.items()
        if n.split('.')[0] in ('gateway', 'protocol') and getattr(m, '__spec__', None)}
print(json.dumps({'hot_path': gateway.connection.HOT_PATH, 'modules': mods}))
"""


def loaded_forms(pure: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "UVGATE_PURE_PYTHON"}
    if pure:
        env["UVGATE_PURE_PYTHON"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", FORMS], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_twin_is_forced_for_every_module() -> None:
    forms = loaded_forms(pure=True)
    modules = forms["modules"]
    assert isinstance(modules, dict) and "gateway.connection.core" in modules
    assert forms["hot_path"] == "pure-python"
    assert not any(modules.values()), [n for n, c in modules.items() if c]


@pytest.mark.skipif(not extensions(), reason="the compiled hot path is not built here")
def test_without_the_switch_the_compiled_modules_run() -> None:
    forms = loaded_forms(pure=False)
    modules = forms["modules"]
    assert isinstance(modules, dict)
    assert forms["hot_path"] == "compiled"
    for name in (
        "protocol.frames",
        "protocol.handshake",
        "gateway.connection.core",
        "gateway.stats",
    ):
        assert modules[name] is True, name


# An import hook in front (atheris, for ``make fuzz``) asks the finders after it and wraps
# what they find: the twin's finder must be among them, not in front of the hook.
HOOKED = """
import sys
seen = {}
class Hook:
    def find_spec(self, name, path, target=None):
        if name in ("protocol.frames", "gateway.connection.core"):
            for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    seen[name] = spec.origin
                    break
        return None
sys.meta_path.insert(0, Hook())
import gateway.connection, protocol.frames
print(seen["protocol.frames"], seen["gateway.connection.core"])
"""


def test_an_import_hook_in_front_still_sees_the_twin() -> None:
    env = {**os.environ, "UVGATE_PURE_PYTHON": "1"}
    done = subprocess.run(
        [sys.executable, "-c", HOOKED], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    frames, core = done.stdout.split()
    assert frames.endswith("protocol/frames.py") and core.endswith("connection/core.py")


def test_metrics_say_which_form_runs() -> None:
    text = Gateway(Config(secret="s", pusher=False)).metrics_text()
    assert f'uvgate_build_info{{hot_path="{HOT_PATH}",worker="0"}} 1.0' in text


def test_a_build_without_a_compiler_falls_back_in_one_line(tmp_path: Path) -> None:
    # CC=false: cythonize works (C from the .py sources), the C compiler does not.
    env = dict(os.environ, CC="false", LDSHARED="false")
    env.pop("UVGATE_PURE_PYTHON", None)
    out = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "build_ext",
            "--build-lib",
            str(tmp_path / "lib"),
            "--build-temp",
            str(tmp_path / "tmp"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "uvgate: compiled hot path" in line]
    assert len(warnings) == 1 and "running as pure Python" in warnings[0], out.stderr
    assert not list((tmp_path / "lib").rglob("*.so"))


def test_pure_python_at_build_time_builds_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, UVGATE_PURE_PYTHON="1")
    out = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "not built (UVGATE_PURE_PYTHON=1)" in out.stderr
    assert not list(tmp_path.rglob("*.so"))


@given(key=st.binary(max_size=200), body=st.binary(max_size=300))
def test_token_key_is_hmac_sha256(key: bytes, body: bytes) -> None:
    assert TokenKey(key).mac(body) == hmac.digest(key, body, hashlib.sha256)


def test_token_key_takes_a_str_secret() -> None:
    assert TokenKey("sécret").mac(b"x") == hmac.digest("sécret".encode(), b"x", hashlib.sha256)
