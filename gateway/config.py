"""One ``Config`` object: every option exists once, with a default, a type and a help line.

Sources, lowest precedence first: the defaults below, a TOML file (``--config``),
``UVGATE_<NAME>`` environment variables, command-line flags. The CLI builds its
flags from these same fields, so an option cannot exist in one place and not another.

Types are strict: a TOML value must already have the option's type (``workers = 1.7``
is an error, not one worker; ``true`` is not a number), and text from the environment
or a flag must parse completely. Tables (``verifier_options``) and arrays of tables
(``apps``) are JSON in the environment and in flags. Every problem is a ``ConfigError``
naming the option and where its value came from, on one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from protocol.forwarded import parse_network

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "build_config",
    "env_name",
    "flag_name",
    "from_env",
    "load_toml",
]

ENV_PREFIX = "UVGATE_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
# Upper bounds that catch a typo (an extra zero, seconds given as milliseconds)
# without getting in the way of any real deployment.
WEEK = 7 * 86400.0
GIB = 1 << 30


class ConfigError(ValueError):
    """A configuration value a person has to fix; the message is one line."""


def opt(
    default: Any,
    help: str,
    *,
    cli: bool = True,
    env: bool = True,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    prefix: str | None = None,
    secret: bool = False,
    alias: str | None = None,
) -> Any:
    """A config field with its help line (read by the CLI and the README generator).

    ``ge``/``gt``/``le`` bound a number, ``choices`` lists the accepted words (any case),
    ``prefix`` is how a string must start; ``secret`` keeps the value out of messages;
    ``alias`` is a second, shorter command-line flag.
    """
    meta = {
        "help": help,
        "cli": cli,
        "env": env,
        "ge": ge,
        "gt": gt,
        "le": le,
        "choices": choices,
        "prefix": prefix,
        "secret": secret,
        "alias": alias,
    }
    if isinstance(default, (list, dict)):
        template = default

        def copy() -> Any:
            return type(template)(template)

        return field(default_factory=copy, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(slots=True)
class Config:
    # --- listening -------------------------------------------------------------
    host: str = opt("127.0.0.1", "Address to listen on.")
    port: int = opt(6001, "TCP port to listen on (0 picks a free one).", ge=0, le=65535)
    workers: int = opt(1, "Worker processes sharing the port with SO_REUSEPORT.", ge=1, le=256)
    backlog: int = opt(4096, "listen() backlog.", ge=1, le=65535)
    certfile: str | None = opt(None, "TLS certificate chain (PEM): serve wss://.")
    keyfile: str | None = opt(None, "TLS private key (PEM).")
    node_id: int | None = opt(
        None,
        "Node number 0-9999 embedded in connection ids (default: from the hostname).",
        ge=0,
        le=9999,
    )
    # --- behind a reverse proxy or a load balancer -------------------------------
    trusted_proxies: list[str] = opt(
        [],
        "Reverse proxies (CIDR or address, comma separated) whose X-Forwarded-For names "
        "the client: its address is then used for logs, limits and verifiers.",
    )
    proxy_protocol: bool = opt(
        False,
        "Expect a PROXY protocol v1/v2 header (HAProxy, AWS NLB) on every connection; "
        "only from trusted_proxies.",
    )
    # --- cluster (Redis) -------------------------------------------------------
    redis_url: str | None = opt(
        None,
        "Redis URL (redis://[user:password@]HOST:PORT/DB, rediss://, unix://): every process "
        "started with the same URL and prefix is a node of one cluster sharing Pusher state.",
        secret=True,
        alias="--redis",
    )
    redis_prefix: str = opt(
        "uvgate",
        "Prefix of every Redis key and channel: clusters (or apps) with different prefixes "
        "share a Redis without seeing each other.",
    )
    # --- native protocol and application ---------------------------------------
    ws_path: str = opt("/ws", "Path of the native uvgate WebSocket endpoint.", prefix="/")
    app: str = opt("echo", "Application: echo, chat, or pkg.mod:factory.")
    verifier: str = opt(
        "hmac", "First-message verifier: none, static, hmac, jwt, http or pkg.mod:Class."
    )
    verifier_options: dict[str, Any] = opt(
        {},
        "Options passed to the verifier: TOML table [verifier_options]; "
        "a JSON object in the environment or the flag.",
        secret=True,
    )
    import_path: str | None = opt(
        None,
        "Directory searched first for a pkg.mod:Name verifier or app "
        "(the working directory is not searched unless named here).",
    )
    secret: str | None = opt(
        None,
        "Secret of the hmac verifier (default: random per start, printed demo token).",
        secret=True,
    )
    auth_timeout: float = opt(
        10.0, "Seconds a connection may stay unauthenticated (then 4408).", gt=0, le=WEEK
    )
    allowed_origins: list[str] = opt(
        [], "Origins allowed to connect (comma separated; empty = any)."
    )
    # --- failure handling -------------------------------------------------------
    auth_fail_limit: int = opt(
        30, "Failed authentications per IP per window before 429.", ge=1, le=1_000_000
    )
    auth_fail_window: float = opt(
        60.0, "Window of the per-IP failure count, in seconds.", gt=0, le=WEEK
    )
    handshake_timeout: float = opt(
        10.0, "Seconds to complete the HTTP upgrade request.", gt=0, le=WEEK
    )
    close_timeout: float = opt(
        1.0, "Seconds to wait for the peer's close frame before aborting.", gt=0, le=WEEK
    )
    # --- limits ----------------------------------------------------------------
    max_message_size: int = opt(
        65536, "Largest accepted message in bytes (beyond: close 1009).", ge=125, le=GIB
    )
    max_connections: int = opt(
        100000, "Connections per worker; beyond it upgrades get 503.", ge=1, le=10_000_000
    )
    max_send_buffer: int = opt(
        1048576,
        "Unsent bytes allowed per connection; beyond it the slow consumer is closed (4413).",
        ge=1,
        le=GIB,
    )
    max_http_body: int = opt(
        262144, "Largest HTTP API request body in bytes (beyond: 413).", ge=1, le=GIB
    )
    ping_interval: float = opt(
        30.0, "Seconds between server pings to a silent connection (0 = off).", ge=0, le=WEEK
    )
    idle_timeout: float = opt(
        120.0, "Close a connection silent this long, pings unanswered (0 = off).", ge=0, le=WEEK
    )
    deflate: bool = opt(False, "Offer permessage-deflate (RFC 7692).")
    # --- lifecycle and logging ---------------------------------------------------
    shutdown_grace: float = opt(
        10.0, "Seconds to let connections close on SIGTERM before aborting.", ge=0, le=WEEK
    )
    log_level: str = opt("info", "Log level: debug, info, warning, error.", choices=LOG_LEVELS)
    log_format: str = opt("text", "Log format: text (logfmt) or json.", choices=LOG_FORMATS)
    # --- Pusher Channels protocol (apps from the TOML file: [[apps]]) -------------
    pusher: bool = opt(True, "Serve Pusher protocol v7 on /app/{key} and its HTTP API on /apps/.")
    apps: list[dict[str, Any]] = opt(
        [],
        "Pusher apps: TOML array of tables [[apps]]; a JSON array of objects in the "
        "environment or the flag.",
        secret=True,
    )
    app_id: str | None = opt(None, "Id of the single Pusher app when no [[apps]] are configured.")
    app_key: str | None = opt(None, "Key of that app (default: the development key app-key).")
    app_secret: str | None = opt(
        None, "Secret of that app (default: the development secret).", secret=True
    )
    api_port: int | None = opt(
        None, "Also serve the Pusher HTTP API on this port (default: same port).", ge=0, le=65535
    )
    api_timestamp_window: float = opt(
        600.0,
        "Accept signed HTTP API requests whose auth_timestamp is within this many seconds.",
        gt=0,
        le=WEEK,
    )

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ``ConfigError`` with a message a person can act on."""
        for name in _FIELDS:
            check_value(name, getattr(self, name))
        for network in self.trusted_proxies:
            try:
                parse_network(network)
            except ValueError as exc:
                raise ConfigError(f"option 'trusted_proxies': {exc}") from None
        if self.proxy_protocol and not self.trusted_proxies:
            raise ConfigError(
                "option 'proxy_protocol' needs 'trusted_proxies' (the addresses of the load "
                "balancers that send the header): without them every connection is refused"
            )
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("options 'certfile' and 'keyfile' go together: set both or neither")
        if self.redis_url is not None and not re.match(r"(rediss?|unix)://", self.redis_url):
            raise ConfigError("option 'redis_url' must start with redis://, rediss:// or unix://")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.redis_prefix):
            raise ConfigError("option 'redis_prefix' must be 1-64 letters, digits, '_', '.' or '-'")
        if self.workers > 1 and self.redis_url is None:
            # Each worker would have its own channels, presence and registry: an event
            # or a send would silently miss the connections of the other workers.
            if self.pusher:
                raise ConfigError(
                    "the Pusher protocol with workers > 1 needs --redis URL (channels and "
                    "presence must be shared by the workers, or events miss subscribers); "
                    "or run one worker, or pass --no-pusher for native-only workers"
                )
            if self.app != "echo":
                raise ConfigError(
                    f"app {self.app!r} with workers > 1 needs --redis URL: its sends, "
                    "broadcasts and closes (by id, user or group) would reach only one "
                    "worker's connections"
                )


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config)}
_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def kind_of(name: str) -> tuple[str, bool]:
    """The base type of option ``name`` ("int", "list[str]"...) and whether it may be None."""
    kind = str(_FIELDS[name].type)
    optional = kind.endswith(" | None")
    return kind.removesuffix(" | None"), optional


def _shown(name: str, value: Any) -> str:
    """``value`` for a message: never a secret, never a long blob."""
    if _FIELDS[name].metadata.get("secret"):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_KIND_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list[str]": "a list of strings",
    "dict[str, Any]": "a table (JSON object)",
    "list[dict[str, Any]]": "an array of tables (JSON array of objects)",
}


def check_value(name: str, value: Any) -> None:
    """Raise ``ConfigError`` unless ``value`` has option ``name``'s type and range."""
    kind, optional = kind_of(name)
    if value is None:
        if optional:
            return
        raise ConfigError(f"option {name!r} must be {_KIND_WORDS[kind]}, not unset")
    ok: bool
    if kind == "int":
        ok = type(value) is int
    elif kind == "float":
        ok = type(value) in (int, float) and math.isfinite(value)
    elif kind == "bool":
        ok = type(value) is bool
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "list[str]":
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    elif kind == "dict[str, Any]":
        ok = isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    elif kind == "list[dict[str, Any]]":
        ok = isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
    else:  # pragma: no cover - a new field type must be added above
        raise AssertionError(f"option {name!r}: unhandled type {kind}")
    if not ok:
        raise ConfigError(f"option {name!r} must be {_KIND_WORDS[kind]}, not {_shown(name, value)}")
    if kind == "str" and not value.strip():
        raise ConfigError(f"option {name!r} must not be empty")
    meta = _FIELDS[name].metadata
    choices, prefix = meta.get("choices"), meta.get("prefix")
    if choices and value.lower() not in choices:
        words = ", ".join(choices[:-1]) + " or " + choices[-1]
        raise ConfigError(f"option {name!r} must be {words}, not {_shown(name, value)}")
    if prefix and not value.startswith(prefix):
        raise ConfigError(f"option {name!r} must start with {prefix}, not {_shown(name, value)}")
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    if ge is not None and value < ge:
        raise ConfigError(f"option {name!r} must be >= {_num(ge)}, not {value!r}")
    if gt is not None and value <= gt:
        raise ConfigError(f"option {name!r} must be > {_num(gt)}, not {value!r}")
    if le is not None and value > le:
        raise ConfigError(f"option {name!r} must be <= {_num(le)}, not {value!r}")


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def range_text(name: str) -> str:
    """The documented range of option ``name`` ("0-65535", "> 0", "" for none)."""
    meta = _FIELDS[name].metadata
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    if ge is not None and le is not None:
        return f"{_num(ge)}-{_num(le)}"
    low = f">= {_num(ge)}" if ge is not None else f"> {_num(gt)}" if gt is not None else ""
    high = f"<= {_num(le)}" if le is not None else ""
    return ", ".join(p for p in (low, high) if p)


def parse_text(name: str, text: str) -> Any:
    """Option ``name`` from the text of an environment variable or a flag, checked."""
    value = _parse(name, text)
    check_value(name, value)
    return value


def _parse(name: str, text: str) -> Any:
    kind, _optional = kind_of(name)
    if kind == "list[str]":
        return [v.strip() for v in text.split(",") if v.strip()]
    stripped = text.strip()
    if not stripped:
        raise ConfigError(f"option {name!r} is empty (leave it unset for the default)")
    if kind == "str":
        return text
    if kind == "int":
        if not _INT_TEXT.fullmatch(stripped):
            raise ConfigError(f"option {name!r} must be an integer, not {_shown(name, text)}")
        return int(stripped)
    if kind == "float":
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"option {name!r} must be a number, not {_shown(name, text)}")
        return number
    if kind == "bool":
        word = stripped.lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ConfigError(
            f"option {name!r} must be true or false (1/0, yes/no, on/off), not {_shown(name, text)}"
        )
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"option {name!r} must be JSON ({_KIND_WORDS[kind]}): {exc}") from None
    return value


def _native(name: str, value: Any) -> Any:
    """Option ``name`` from a typed source (TOML, a Python caller): checked, never converted
    across types, except an integer where a number of seconds is expected."""
    check_value(name, value)
    kind, _optional = kind_of(name)
    if kind == "float" and value is not None:
        return float(value)
    if kind == "list[str]":
        return list(value)
    if kind == "dict[str, Any]":
        return dict(value)
    if kind == "list[dict[str, Any]]":
        return [dict(v) for v in value]
    return value


def _from(where: str, convert: Any, name: str, value: Any) -> Any:
    """``convert(name, value)`` with ``where`` the value came from in the error message."""
    try:
        return convert(name, value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s): {', '.join(unknown)}")
    return {k: _from(path, _native, k, v) for k, v in data.items()}


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        key = env_name(name)
        if f.metadata.get("env", True) and key in environ:
            out[name] = _from(key, parse_text, name, environ[key])
    return out


def build_config(
    file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < TOML file < UVGATE_* env < explicit overrides (CLI flags).

    An override given as text (a flag) is parsed like an environment variable; any
    other value must already have the option's type.
    """
    values: dict[str, Any] = {}
    if file:
        values.update(load_toml(file))
    values.update(from_env(os.environ if environ is None else environ))
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown option {name!r}")
        if isinstance(value, str) and kind_of(name)[0] != "str":
            values[name] = _from(flag_name(name), parse_text, name, value)
        else:
            values[name] = _from(flag_name(name), _native, name, value)
    cfg = Config(**values)
    cfg.validate()
    return cfg
