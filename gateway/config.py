"""One ``Config`` object: every option exists once, with a default, a type and a help line.

Sources, lowest precedence first: the defaults below, a TOML file (``--config``),
``UVGATE_<NAME>`` environment variables, command-line flags. The CLI builds its
flags from these same fields, so an option cannot exist in one place and not another.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "UVGATE_"


def opt(default: Any, help: str, *, cli: bool = True, env: bool = True) -> Any:
    """A config field with its help line (read by the CLI and the README generator)."""
    if isinstance(default, (list, dict)):
        template = default

        def copy() -> Any:
            return type(template)(template)

        return field(default_factory=copy, metadata={"help": help, "cli": cli, "env": env})
    return field(default=default, metadata={"help": help, "cli": cli, "env": env})


@dataclass(slots=True)
class Config:
    # --- listening -------------------------------------------------------------
    host: str = opt("127.0.0.1", "Address to listen on.")
    port: int = opt(6001, "TCP port to listen on (0 picks a free one).")
    workers: int = opt(1, "Worker processes sharing the port with SO_REUSEPORT.")
    backlog: int = opt(4096, "listen() backlog.")
    certfile: str | None = opt(None, "TLS certificate chain (PEM): serve wss://.")
    keyfile: str | None = opt(None, "TLS private key (PEM).")
    node_id: int | None = opt(
        None, "Node number 0-9999 embedded in connection ids (default: from the hostname)."
    )
    # --- native protocol and application ---------------------------------------
    ws_path: str = opt("/ws", "Path of the native uvgate WebSocket endpoint.")
    app: str = opt("echo", "Application: echo, chat, or pkg.mod:factory.")
    verifier: str = opt(
        "hmac", "First-message verifier: none, static, hmac, jwt, http or pkg.mod:Class."
    )
    verifier_options: dict[str, Any] = opt(
        {}, "Options passed to the verifier (TOML table [verifier_options]).", cli=False, env=False
    )
    secret: str | None = opt(
        None,
        "Secret of the hmac verifier (default: random per start, printed demo token).",
    )
    auth_timeout: float = opt(10.0, "Seconds a connection may stay unauthenticated (then 4408).")
    allowed_origins: list[str] = opt(
        [], "Origins allowed to connect (comma separated; empty = any)."
    )
    # --- failure handling -------------------------------------------------------
    auth_fail_limit: int = opt(30, "Failed authentications per IP per window before 429.")
    auth_fail_window: float = opt(60.0, "Window of the per-IP failure count, in seconds.")
    handshake_timeout: float = opt(10.0, "Seconds to complete the HTTP upgrade request.")
    close_timeout: float = opt(1.0, "Seconds to wait for the peer's close frame before aborting.")
    # --- limits ----------------------------------------------------------------
    max_message_size: int = opt(65536, "Largest accepted message in bytes (beyond: close 1009).")
    max_connections: int = opt(100000, "Connections per worker; beyond it upgrades get 503.")
    max_send_buffer: int = opt(
        1048576,
        "Unsent bytes allowed per connection; beyond it the slow consumer is closed (4413).",
    )
    max_http_body: int = opt(262144, "Largest HTTP API request body in bytes (beyond: 413).")
    ping_interval: float = opt(
        30.0, "Seconds between server pings to a silent connection (0 = off)."
    )
    idle_timeout: float = opt(
        120.0, "Close a connection silent this long, pings unanswered (0 = off)."
    )
    deflate: bool = opt(False, "Offer permessage-deflate (RFC 7692).")
    # --- lifecycle and logging ---------------------------------------------------
    shutdown_grace: float = opt(
        10.0, "Seconds to let connections close on SIGTERM before aborting."
    )
    log_level: str = opt("info", "Log level: debug, info, warning, error.")
    log_format: str = opt("text", "Log format: text (logfmt) or json.")
    # --- Pusher Channels protocol (apps from the TOML file: [[apps]]) -------------
    pusher: bool = opt(True, "Serve Pusher protocol v7 on /app/{key} and its HTTP API on /apps/.")
    apps: list[dict[str, Any]] = opt(
        [], "Pusher apps (TOML array of tables [[apps]]).", cli=False, env=False
    )
    app_id: str | None = opt(None, "Id of the single Pusher app when no [[apps]] are configured.")
    app_key: str | None = opt(None, "Key of that app (default: the development key app-key).")
    app_secret: str | None = opt(None, "Secret of that app (default: the development secret).")
    api_port: int | None = opt(
        None, "Also serve the Pusher HTTP API on this port (default: same port)."
    )
    api_timestamp_window: float = opt(
        600.0, "Accept signed HTTP API requests whose auth_timestamp is within this many seconds."
    )

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ``ValueError`` with a message a person can act on."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, not {self.port}")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        if self.node_id is not None and not 0 <= self.node_id <= 9999:
            raise ValueError("node_id must be 0-9999")
        for name in ("auth_timeout", "handshake_timeout", "close_timeout", "auth_fail_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_message_size < 125:
            raise ValueError("max_message_size must be >= 125")
        if self.log_format not in ("text", "json"):
            raise ValueError("log_format must be text or json")
        if not self.ws_path.startswith("/"):
            raise ValueError("ws_path must start with /")
        if self.pusher and self.workers > 1:
            # Each worker has its own channels and presence: an event triggered
            # on one worker would silently miss the subscribers of the others.
            raise ValueError(
                "the Pusher protocol needs workers = 1 (channels and presence are per "
                "process, so events would miss subscribers on other workers); "
                "pass --no-pusher to run native-only workers"
            )


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a TOML/env/flag value to the field's type, with a clear error."""
    f = _FIELDS[name]
    kind = str(f.type)
    try:
        if value is None:
            return None
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("list"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        if kind.startswith("dict"):
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return dict(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name!r}: cannot use {value!r} as {kind}") from None


def load_toml(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{path}: unknown option(s): {', '.join(unknown)}")
    return {k: _coerce(k, v) for k, v in data.items()}


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in _FIELDS.items():
        key = ENV_PREFIX + name.upper()
        if f.metadata.get("env", True) and key in environ:
            out[name] = _coerce(name, environ[key])
    return out


def build_config(
    file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < TOML file < UVGATE_* env < explicit overrides (CLI flags)."""
    values: dict[str, Any] = {}
    if file:
        values.update(load_toml(file))
    values.update(from_env(os.environ if environ is None else environ))
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise ValueError(f"unknown option {name!r}")
        values[name] = _coerce(name, value)
    cfg = Config(**values)
    cfg.validate()
    return cfg
