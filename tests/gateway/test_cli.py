"""The command line as an operator meets it: every mistake is one line on stderr and exit
status 2, before anything is bound (configuration from any source, TLS files, host,
``uvgate token``), and the working directory cannot shadow uvgate's imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import connect

from gateway.config import ConfigError
from gateway.tls import load_tls
from gateway.tokens import verify_token
from tests.conftest import run_checked
from tests.gwtest import self_signed
from tests.served import Program, free_port

PYTHON = sys.executable
UVGATE = str(Path(sys.executable).parent / "uvgate")
PREFIX = "uvgate: configuration error: "


def uvgate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [PYTHON, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def one_line_error(result: subprocess.CompletedProcess[str], prefix: str = PREFIX) -> str:
    """The single stderr line of a refused command (exit 2, nothing on stdout)."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert result.stdout == "", result.stdout
    return lines[0]


# -- one line, whatever the source -------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("workers", "1.7", "option 'workers' must be an integer"),
        ("log_level", "verbose", "option 'log_level' must be debug, info, warning or error"),
        ("max_connections", "-5", "option 'max_connections' must be >= 1, not -5"),
        ("auth_timeout", "true", "option 'auth_timeout' must be a number"),
    ],
)
def test_bad_option_is_one_line_from_file_env_and_flag(
    tmp_path: Path, option: str, value: str, expected: str
):
    toml_value = value if value in ("1.7", "-5", "true") else json.dumps(value)
    path = tmp_path / "uvgate.toml"
    path.write_text(f"{option} = {toml_value}\n")
    from_file = one_line_error(uvgate("serve", "--config", str(path)))
    assert from_file.startswith(f"{PREFIX}{path}: ") and expected in from_file
    env = f"UVGATE_{option.upper()}"
    from_env = one_line_error(uvgate("serve", env={env: value}))
    assert from_env.startswith(f"{PREFIX}{env}: ") and expected in from_env
    flag = "--" + option.replace("_", "-")
    from_flag = one_line_error(uvgate("serve", flag, value))
    assert from_flag.startswith(f"{PREFIX}{flag}: ") and expected in from_flag


def test_usage_mistakes_are_one_line(tmp_path: Path):
    line = one_line_error(uvgate("serve", "--no-such-flag"))
    assert "--no-such-flag" in line and "uvgate serve --help" in line
    line = one_line_error(uvgate("serve", "--config", str(tmp_path / "missing.toml")))
    assert "missing.toml" in line
    line = one_line_error(uvgate("serve", env={"UVGATE_APPS": '{"id": 1}'}))
    assert "UVGATE_APPS: option 'apps' must be an array of tables" in line
    line = one_line_error(uvgate("serve", "--apps", '[{"id": "1", "key": "k"}]'))
    assert "secret" in line  # the app store names the missing key
    line = one_line_error(uvgate("serve", "--verifier", "nosuch"))
    assert "unknown verifier 'nosuch'" in line
    assert one_line_error(uvgate("frobnicate"), "uvgate: usage error: ")


# -- TLS files: checked before binding, named in the message -------------------------------
@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    cert, key = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _other_cert, other_key = self_signed(other)
    encrypted = tmp_path / "encrypted.pem"
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return {"cert": cert, "key": key, "other_key": other_key, "encrypted": encrypted}


def tls_error(certfile: Path | str, keyfile: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_tls(str(certfile), str(keyfile))
    return str(info.value)


def test_tls_mistakes_name_the_option_and_the_file(pem: dict[str, Path], tmp_path: Path):
    cert, key = pem["cert"], pem["key"]
    assert load_tls(str(cert), str(key)) is not None
    missing = tmp_path / "nope.pem"
    assert tls_error(missing, key) == f"option 'certfile': file '{missing}' does not exist"
    assert tls_error(cert, missing) == f"option 'keyfile': file '{missing}' does not exist"
    assert f"option 'certfile': '{tmp_path}' is a directory" in tls_error(tmp_path, key)
    assert tls_error(cert, cert) == (
        f"option 'keyfile': '{cert}' holds a certificate, not a private key"
    )
    assert f"option 'certfile': '{key}' holds no PEM certificate" in tls_error(key, key)
    mismatch = tls_error(cert, pem["other_key"])
    assert mismatch.startswith(f"option 'keyfile': the key in '{pem['other_key']}' does not")
    assert f"'{cert}'" in mismatch
    assert "is encrypted" in tls_error(cert, pem["encrypted"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    assert tls_error(cert, garbage) == f"option 'keyfile': '{garbage}' holds no PEM private key"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_key_file(pem: dict[str, Path]):
    pem["key"].chmod(0)
    message = tls_error(pem["cert"], pem["key"])
    assert message == f"option 'keyfile': file '{pem['key']}' is not readable (permission denied)"


def test_tls_mistake_from_the_command_line(pem: dict[str, Path]):
    line = one_line_error(
        uvgate(
            "serve", "--port", "0", "--certfile", str(pem["cert"]), "--keyfile", str(pem["cert"])
        )
    )
    assert (
        line == f"{PREFIX}option 'keyfile': '{pem['cert']}' holds a certificate, not a private key"
    )
    line = one_line_error(
        uvgate("serve", "--certfile", str(pem["cert"]), env={"UVGATE_KEYFILE": "/no/such.pem"})
    )
    assert line == f"{PREFIX}option 'keyfile': file '/no/such.pem' does not exist"


def test_unknown_host_is_one_line():
    line = one_line_error(uvgate("serve", "--host", "gateway.invalid"))
    assert line.startswith(f"{PREFIX}option 'host': cannot resolve 'gateway.invalid'")
    # TEST-NET-1 (RFC 5737): a valid address that is not this machine's.
    line = one_line_error(uvgate("serve", "--host", "192.0.2.1"))
    assert line.startswith(f"{PREFIX}option 'host': '192.0.2.1' is not an address of this machine")


# -- uvgate token ------------------------------------------------------------------------
TOKEN_ERROR = "uvgate: token error: "


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--secret", "s", "--sub", ""], {}, "--sub must name a user"),
        (["--secret", "", "--sub", "alice"], {}, "--secret is empty"),
        (["--sub", "alice"], {"UVGATE_SECRET": ""}, "UVGATE_SECRET is empty"),
        (["--sub", "alice"], {}, "no secret: pass --secret or set UVGATE_SECRET"),
        (["--secret", "s", "--sub", "alice", "--ttl", "-5"], {}, "--ttl must be"),
        (["--secret", "s", "--sub", "alice", "--ttl", "0.5"], {}, "--ttl must be"),
        (["--secret", "s", "--sub", "alice", "--ttl", "inf"], {}, "--ttl must be"),
        (["--secret", "s", "--sub", "alice", "--ttl", "soon"], {}, "--ttl must be"),
        (["--secret", "s", "--sub", "alice", "--group", ""], {}, "--group must not be empty"),
    ],
)
def test_token_refuses_useless_tokens(args: list[str], env: dict[str, str], expected: str):
    environ = {k: v for k, v in os.environ.items() if k != "UVGATE_SECRET"}
    result = subprocess.run(
        [PYTHON, "-m", "gateway", "token", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )
    assert expected in one_line_error(result, TOKEN_ERROR)


def test_token_reads_the_secret_from_the_environment():
    result = uvgate("token", "--sub", "alice", "--ttl", "60", env={"UVGATE_SECRET": "env-secret"})
    assert result.returncode == 0, result.stderr
    claims = verify_token("env-secret", result.stdout.strip())
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 60
    # --secret still wins over the environment.
    result = uvgate("token", "--secret", "flag", "--sub", "bob", env={"UVGATE_SECRET": "env"})
    assert verify_token("flag", result.stdout.strip())["sub"] == "bob"


# -- the working directory does not shadow imports ----------------------------------------
JWT_SECRET = "a-jwt-secret-of-at-least-thirty-two-bytes"


async def jwt_auth_ok(port: int) -> None:
    tok = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": tok}))
        assert json.loads(await ws.recv())["type"] == "auth_ok"


@pytest.mark.parametrize("how", ["script", "module"])
def test_a_jwt_py_in_the_working_directory_does_not_replace_pyjwt(tmp_path: Path, how: str):
    trap = "raise RuntimeError('imported from the working directory')\n"
    (tmp_path / "jwt.py").write_text(trap)
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "__init__.py").write_text(trap)
    (tmp_path / "orjson.py").write_text(trap)
    port = free_port()
    # python -m puts the working directory first on sys.path (Python's rule); gateway's
    # __main__ takes it off before anything else is imported.
    start = [UVGATE] if how == "script" else [PYTHON, "-m", "gateway"]
    options = json.dumps({"secret": JWT_SECRET})
    cmd = [*start, "serve", "--port", str(port), "--verifier", "jwt", "--verifier-options", options]
    served = Program(cmd, cwd=tmp_path)
    try:
        run_checked(jwt_auth_ok(port))
    finally:
        code, err = served.stop()
    assert code == 0, err
    assert "working directory" not in err


def test_custom_verifier_is_loaded_from_import_path_only(tmp_path: Path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "club.py").write_text(
        "from gateway.verifiers import Identity\n\n"
        "def verify(message, conn):\n"
        "    return Identity('member-' + str(message.get('name')))\n"
    )
    # Standing next to it is not enough...
    result = subprocess.run(
        [UVGATE, "serve", "--port", "0", "--verifier", "club:verify"],
        cwd=plugins,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot import 'club'" in one_line_error(result)
    # ... a directory that does not exist is named ...
    result = subprocess.run(
        [UVGATE, "serve", "--verifier", "club:verify", "--import-path", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one_line_error(result) == f"{PREFIX}option 'import_path': 'nowhere' is not a directory"
    # ... and import_path (relative to the working directory) is how to ask for it.
    port = free_port()
    cmd = [UVGATE, "serve", "--port", str(port), "--verifier", "club:verify"]
    served = Program([*cmd, "--import-path", "plugins"], cwd=tmp_path)

    async def main() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"name": "ann"}))
            assert json.loads(await ws.recv())["user"] == "member-ann"

    try:
        run_checked(main())
    finally:
        code, err = served.stop()
    assert code == 0, err


def test_issue_token_refuses_an_empty_secret_or_user():
    from gateway.tokens import issue_token

    with pytest.raises(ValueError, match="secret must not be empty"):
        issue_token("", "alice")
    with pytest.raises(ValueError, match="sub must be a non-empty string"):
        issue_token("s", "")
