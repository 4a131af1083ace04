"""Configuration: strict types and ranges, and every option from every source (TOML file,
UVGATE_* environment, flag), each mistake one message naming the option and the source."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, ConfigError, build_config, env_name, flag_name, kind_of

OPTIONS = [f.name for f in dataclasses.fields(Config)]
# Values that differ from every default and pass Config.validate together with BASE.
SAMPLES: dict[str, Any] = {
    "host": "127.0.0.2",
    "port": 7001,
    "workers": 3,
    "redis_url": "redis://127.0.0.1:6390/2",
    "redis_prefix": "staging",
    "backlog": 128,
    "certfile": "/etc/uvgate/other-cert.pem",
    "keyfile": "/etc/uvgate/other-key.pem",
    "node_id": 42,
    "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"],
    "proxy_protocol": True,
    "ws_path": "/socket",
    "app": "chat",
    "verifier": "jwt",
    "verifier_options": {"jwks_url": "https://idp.example/jwks", "audience": ["a", "b"]},
    "import_path": "/srv/plugins",
    "secret": "s3cret with spaces",
    "auth_timeout": 2.5,
    "allowed_origins": ["https://a.example", "https://b.example"],
    "auth_fail_limit": 7,
    "auth_fail_window": 30.0,
    "handshake_timeout": 4.0,
    "close_timeout": 0.5,
    "max_message_size": 1024,
    "max_connections": 50,
    "max_send_buffer": 4096,
    "max_http_body": 2048,
    "ping_interval": 0.0,
    "idle_timeout": 15.0,
    "deflate": True,
    "shutdown_grace": 3.0,
    "log_level": "debug",
    "log_format": "json",
    "pusher": False,
    "apps": [
        {
            "id": "7",
            "key": "k7",
            "secret": "x",
            "auth_failure": "error",
            "webhooks": [{"url": "https://h.example/hook", "event_types": ["member_added"]}],
        }
    ],
    "app_id": "9",
    "app_key": "key-9",
    "app_secret": "secret-9",
    "api_port": 7002,
    "api_timestamp_window": 30.0,
}
# certfile/keyfile go together, workers > 1 needs pusher = false, proxy_protocol needs
# trusted_proxies.
BASE = {
    "certfile": "/etc/uvgate/cert.pem",
    "keyfile": "/etc/uvgate/key.pem",
    "pusher": False,
    "trusted_proxies": ["10.0.0.0/8"],
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_of(values: dict[str, Any]) -> str:
    return "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())


def text_of(name: str, value: Any) -> str:
    """How an operator writes ``value`` in UVGATE_<NAME> or --<name>."""
    kind = kind_of(name)[0]
    if kind == "bool":
        return "yes" if value else "off"
    if kind == "list[str]":
        return " , ".join(value)
    if kind.startswith(("dict", "list[dict")):
        return json.dumps(value)
    return str(value)


def test_samples_cover_every_option():
    assert set(SAMPLES) == set(OPTIONS)
    defaults = Config()
    for name in OPTIONS:
        assert SAMPLES[name] != getattr(defaults, name), name


@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_from_file_environment_and_flag(name: str, tmp_path: Path):
    want = SAMPLES[name]
    base = {k: v for k, v in BASE.items() if k != name}
    path = tmp_path / "uvgate.toml"
    path.write_text(toml_of({**base, name: want}))
    from_file = build_config(str(path), environ={})
    from_env = build_config(
        environ={env_name(k): text_of(k, v) for k, v in {**base, name: want}.items()}
    )
    from_flag = build_config(
        overrides={k: text_of(k, v) for k, v in {**base, name: want}.items()}, environ={}
    )
    for config in (from_file, from_env, from_flag):
        assert getattr(config, name) == want


def test_precedence_file_then_environment_then_flag(tmp_path: Path):
    path = tmp_path / "uvgate.toml"
    path.write_text("port = 7000\nbacklog = 10\nmax_connections = 20\n")
    config = build_config(
        str(path),
        overrides={"max_connections": "30"},
        environ={env_name("backlog"): "11", env_name("max_connections"): "21"},
    )
    assert (config.port, config.backlog, config.max_connections) == (7000, 11, 30)
    # A table from the environment replaces the file's table (no merge).
    path.write_text('verifier = "jwt"\n[verifier_options]\nsecret = "x"\nleeway = 5\n')
    config = build_config(str(path), environ={env_name("verifier_options"): '{"leeway": 1}'})
    assert config.verifier_options == {"leeway": 1}


# -- strict types -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("workers = 1.7", "option 'workers' must be an integer, not 1.7"),
        ("auth_timeout = true", "option 'auth_timeout' must be a number, not True"),
        ('port = "6001"', "option 'port' must be an integer, not '6001'"),
        ("deflate = 1", "option 'deflate' must be true or false, not 1"),
        ("max_connections = -5", "option 'max_connections' must be >= 1, not -5"),
        ("max_connections = 0", "option 'max_connections' must be >= 1, not 0"),
        ("port = 70000", "option 'port' must be <= 65535, not 70000"),
        ("auth_timeout = 0", "option 'auth_timeout' must be > 0, not 0"),
        ("shutdown_grace = -1.5", "option 'shutdown_grace' must be >= 0, not -1.5"),
        ("idle_timeout = inf", "option 'idle_timeout' must be a number, not inf"),
        ("max_message_size = 100", "option 'max_message_size' must be >= 125, not 100"),
        ('log_level = "verbose"', "option 'log_level' must be debug, info, warning or error"),
        ('log_format = "xml"', "option 'log_format' must be text or json, not 'xml'"),
        ('allowed_origins = "https://a.example"', "option 'allowed_origins' must be a list"),
        ("allowed_origins = [1]", "option 'allowed_origins' must be a list of strings"),
        ('host = ""', "option 'host' must not be empty"),
        ("app_id = 1001", "option 'app_id' must be a string, not 1001"),
        ('verifier_options = "x"', "option 'verifier_options' must be a table"),
        ("apps = [1]", "option 'apps' must be an array of tables"),
        ('ws_path = "ws"', "option 'ws_path' must start with /"),
        ('certfile = "c.pem"', "options 'certfile' and 'keyfile' go together"),
    ],
)
def test_toml_types_and_ranges_are_strict(line: str, message: str, tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as info:
        build_config(str(path), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("workers", "1.7", "option 'workers' must be an integer, not '1.7'"),
        ("workers", "2x", "option 'workers' must be an integer"),
        ("port", "", "option 'port' is empty"),
        ("auth_timeout", "true", "option 'auth_timeout' must be a number, not 'true'"),
        ("auth_timeout", "nan", "option 'auth_timeout' must be a number"),
        ("deflate", "maybe", "option 'deflate' must be true or false"),
        ("max_connections", "-5", "option 'max_connections' must be >= 1, not -5"),
        ("log_level", "verbose", "option 'log_level' must be debug, info, warning or error"),
        ("verifier_options", "{not json", "option 'verifier_options' must be JSON"),
        ("verifier_options", "[1, 2]", "option 'verifier_options' must be a table"),
        ("apps", '{"id": "1"}', "option 'apps' must be an array of tables"),
        ("apps", "[1]", "option 'apps' must be an array of tables"),
    ],
)
def test_environment_and_flag_text_must_parse(name: str, text: str, message: str):
    with pytest.raises(ConfigError) as env_error:
        build_config(environ={env_name(name): text})
    assert str(env_error.value).startswith(f"{env_name(name)}: ")
    assert message in str(env_error.value)
    with pytest.raises(ConfigError) as flag_error:
        build_config(overrides={name: text}, environ={})
    assert str(flag_error.value).startswith(f"{flag_name(name)}: ")
    assert message in str(flag_error.value)


def test_secret_values_never_appear_in_messages(tmp_path: Path):
    for name, text in (
        ("apps", '{"secret": "hunter2"}'),
        ("verifier_options", '["hunter2"]'),
        ("secret", "   "),
    ):
        with pytest.raises(ConfigError) as info:
            build_config(environ={env_name(name): text})
        assert "hunter2" not in str(info.value), name
    path = tmp_path / "s.toml"
    path.write_text("app_secret = 123456789\n")
    with pytest.raises(ConfigError) as info:
        build_config(str(path), environ={})
    assert "123456789" not in str(info.value) and "app_secret" in str(info.value)


def test_config_object_is_checked_too():
    # Embedders build Config directly: the same rules apply in validate().
    for bad in ({"workers": 1.7}, {"auth_timeout": True}, {"max_connections": -5}):
        with pytest.raises(ConfigError):
            Config(**bad).validate()
    Config(auth_timeout=1).validate()  # an int is a number of seconds


def test_toml_errors_name_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("port = \n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML"):
        build_config(str(path), environ={})
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing.toml"):
        build_config(str(tmp_path / "missing.toml"), environ={})
