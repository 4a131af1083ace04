"""README.md stays honest: its configuration table is generated from ``Config`` (and checked
here), its TOML examples load, its commands name real flags, codes and make targets."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import docs
from gateway.cli import build_parser
from gateway.config import Config, build_config
from gateway.server import Gateway
from protocol import closecodes
from protocol.pusher import errors as pusher_errors
from protocol.pusher.apps import App

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def test_config_table_matches_config(readme: str):
    assert docs.check(readme) == [], "run: python -m gateway.docs --write README.md"


def test_check_command_exit_status(tmp_path: Path):
    ok = subprocess.run(
        [sys.executable, "-m", "gateway.docs", "--check", str(README)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "README.md"
    stale.write_text(
        README.read_text().replace(
            "| `port` | `int` 0-65535 | `6001`", "| `port` | `int` 0-65535 | `1`"
        )
    )
    bad = subprocess.run(
        [sys.executable, "-m", "gateway.docs", "--check", str(stale)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "--write" in bad.stderr
    missing = tmp_path / "empty.md"
    missing.write_text("# no table\n")
    assert docs.main(["--check", str(missing)]) == 1
    assert docs.main(["--write", str(stale)]) == 0
    assert docs.check(stale.read_text()) == []


def test_table_has_one_row_per_option():
    rows = docs.config_rows()
    assert len(rows) == len(dataclasses.fields(Config))
    for f, row in zip(dataclasses.fields(Config), rows, strict=True):
        assert row.startswith(f"| `{f.name}` |")
        assert f.metadata["help"].replace("|", "\\|") in row


def test_every_toml_example_is_a_loadable_config(readme: str, tmp_path: Path):
    examples = blocks(readme, "toml")
    assert len(examples) >= 5
    for n, text in enumerate(examples):
        path = tmp_path / f"example{n}.toml"
        path.write_text(text)
        config = build_config(str(path), environ={})
        if config.verifier == "hmac" and not config.secret:
            # What `uvgate serve` does without a secret: a random one for the run.
            config = config.replace(secret="random-for-this-run")
        # Building the gateway loads the verifier, the app and the Pusher apps.
        Gateway(config.replace(port=0, certfile=None, keyfile=None))


def test_full_example_names_every_option(readme: str):
    (full,) = [b for b in blocks(readme, "toml") if b.startswith("# uvgate.toml")]
    for f in dataclasses.fields(Config):
        assert re.search(rf"^(# |\[\[?)?{f.name}\b", full, flags=re.M), f.name


def test_commands_use_real_flags(readme: str):
    parser = build_parser()
    seen = 0
    for block in blocks(readme, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            match = re.search(r"(?:^|/|\s)uvgate (serve|token)\b(.*)", line)
            if match is None or "&&" in match.group(2) or "|" in match.group(2):
                continue
            argv = [match.group(1), *shlex.split(match.group(2).split(" &")[0])]
            argv = [a if not a.startswith("$") else "1" for a in argv]
            parser.parse_args(argv)  # SystemExit on an unknown flag
            seen += 1
    assert seen >= 5


def test_codes_and_targets_are_documented(readme: str):
    for code in (
        closecodes.AUTH_FAILED,
        closecodes.AUTH_FORBIDDEN,
        closecodes.AUTH_TIMEOUT,
        closecodes.SLOW_CONSUMER,
        closecodes.AUTH_RATE_LIMITED,
        closecodes.AUTH_UNAVAILABLE,
        pusher_errors.UNAUTHORIZED,
        pusher_errors.RECONNECT_NOW,
        pusher_errors.PONG_NOT_RECEIVED,
    ):
        assert f"`{code}`" in readme, code
    for field in App.__dataclass_fields__:
        assert f"`{field}`" in readme, f"App field {field} missing from the [[apps]] table"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "conformance", "bench", "bench-quick"):
        assert f"make {target}" in readme
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
