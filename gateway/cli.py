"""Command line: ``uvgate serve`` and ``uvgate token`` (also ``python -m gateway``).

Anything a user can get wrong is one line on stderr and exit status 2, checked before
the port is bound: the configuration (types, ranges, the TLS files, the host), the
verifier and the app (loaded once here, so a bad option is not a traceback per
worker), and the ``token`` arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import math
import os
import secrets
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from gateway.config import (
    ENV_PREFIX,
    Config,
    ConfigError,
    build_config,
    env_name,
    flag_name,
    kind_of,
)
from gateway.tokens import issue_token

__all__ = ["build_parser", "check_host", "main", "reloader"]

MAX_TOKEN_TTL = 10 * 366 * 86400  # ten years: beyond that a typo, not a token lifetime


class UsageError(Exception):
    """A bad command line; ``main`` prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) for ``main`` to print."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, generated so flags and config can never drift."""
    for f in dataclasses.fields(Config):
        if not f.metadata.get("cli", True):
            continue
        flag = flag_name(f.name)
        help_text = f"{f.metadata['help']} [env {env_name(f.name)}]"
        default = f.default if f.default is not dataclasses.MISSING else None
        if default not in (None, [], ""):
            help_text += f" (default: {default})"
        flags = [flag] + ([f.metadata["alias"]] if f.metadata.get("alias") else [])
        if kind_of(f.name)[0] == "bool":
            parser.add_argument(
                *flags,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                *flags, dest=f.name, default=None, metavar=f.name.upper(), help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="uvgate",
        description="uvgate: a uvloop WebSocket gateway with first-message authentication.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML configuration file", default=None)
    _add_config_flags(serve)
    token = sub.add_parser("token", help="issue a token for the built-in hmac verifier")
    token.add_argument(
        "--secret",
        default=None,
        help=f"the gateway's hmac secret (default: ${ENV_PREFIX}SECRET, which keeps it "
        "out of the command line and the shell history)",
    )
    token.add_argument("--sub", required=True, help="user id to put in the token")
    token.add_argument("--ttl", default="3600", help="seconds of validity (default 3600)")
    token.add_argument(
        "--group", action="append", default=[], help="group to join on auth (repeatable)"
    )
    return parser


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _config_error(exc: object) -> int:
    print(f"uvgate: configuration error: {_one_line(exc)}", file=sys.stderr)
    return 2


# -- checks that need the machine (Config.validate only looks at the values) ------------
def check_host(host: str) -> None:
    """``ConfigError`` unless every address ``host`` resolves to can be listened on here."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"option 'host': cannot resolve {host!r}: {why}") from None
    for family, kind, proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        named = repr(host) if address == host else f"{host!r} ({address})"
        with socket.socket(family, kind, proto) as probe:
            try:
                # Port 0: tests the address only; the real port is bound later.
                probe.bind((address, 0, *sockaddr[2:]))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise ConfigError(
                        f"option 'host': {named} is not an address of this machine "
                        "(use 0.0.0.0 or :: for every interface)"
                    ) from None
                raise ConfigError(
                    f"option 'host': cannot listen on {named}: {exc.strerror or exc}"
                ) from None


def _use_import_path(path: str) -> None:
    """Put the configured ``import_path`` first on ``sys.path`` (it must be a directory)."""
    if not os.path.isdir(path):
        raise ConfigError(f"option 'import_path': {path!r} is not a directory")
    full = os.path.abspath(path)
    if full not in sys.path:
        sys.path.insert(0, full)


def _read(file: str | None, overrides: dict[str, Any]) -> Config:
    """The configuration from ``file``, the environment and the flags, with its files
    checked (TLS); ``ConfigError``/``OSError`` otherwise."""
    config = build_config(file, overrides)
    if config.import_path is not None:
        _use_import_path(config.import_path)
    if config.certfile is not None:
        from gateway.tls import load_tls

        load_tls(config.certfile, config.keyfile)
    return config


def _needs_demo_secret(config: Config) -> bool:
    return (
        config.verifier == "hmac" and not config.secret and "secret" not in config.verifier_options
    )


def _check_parts(config: Config, *, app: bool) -> None:
    """Build the verifier (and the app, at start-up) and the Pusher apps once, so a bad
    option is one clear ``ConfigError`` here instead of a traceback in every worker."""
    try:
        from gateway.pusher import build_store
        from gateway.server import Gateway, verifier_for

        if app:
            # A gateway that is not started loads the verifier and the app.
            Gateway(config.replace(pusher=False))
        else:
            verifier_for(config)  # a reload never rebuilds the app
        if config.pusher:
            build_store(config)
    except ConfigError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise ConfigError(_one_line(exc)) from None
    except Exception as exc:  # a custom verifier's or app's own failure
        raise ConfigError(f"{type(exc).__name__}: {exc}") from None


def reloader(file: str | None, overrides: dict[str, Any]) -> Callable[[Config], Config]:
    """What SIGHUP runs: read the same sources again and check them like at start-up.

    The throw-away demo secret of a run without one is kept, or a reload would log
    every user out."""

    def reload(running: Config) -> Config:
        try:
            config = _read(file, overrides)
        except OSError as exc:
            raise ConfigError(_one_line(exc)) from None
        if _needs_demo_secret(config) and running.secret:
            config = config.replace(secret=running.secret)
        _check_parts(config, app=False)
        return config

    return reload


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if f.metadata.get("cli", True) and getattr(args, f.name, None) is not None
    }
    try:
        config = _read(args.config, overrides)
        check_host(config.host)
    except (ValueError, OSError) as exc:
        return _config_error(exc)

    from gateway.logs import setup_logging
    from gateway.workers import run

    setup_logging(config.log_level, config.log_format)
    demo_secret = False
    if _needs_demo_secret(config):
        config = config.replace(secret=secrets.token_urlsafe(32))
        demo_secret = True
    try:
        _check_parts(config, app=True)
    except ConfigError as exc:
        return _config_error(exc)

    from gateway.connection import HOT_PATH

    def on_ready(port: int) -> None:
        scheme = "wss" if config.certfile else "ws"
        print(
            f"uvgate listening on {scheme}://{config.host}:{port}{config.ws_path} "
            f"(verifier={config.verifier}, app={config.app}, workers={config.workers}, "
            f"hot_path={HOT_PATH})",
            flush=True,
        )
        if config.verifier == "hmac" and demo_secret:
            # A token is printed only for the throw-away secret of this run: with
            # a configured secret it would be a real credential in the logs.
            token = issue_token(config.secret or "", "demo-user", 3600)
            print(
                "WARNING: no --secret given; using a random secret for this run only.", flush=True
            )
            print("Connect with any WebSocket client and send as the first message:", flush=True)
            print(f'  {{"type":"auth","token":"{token}"}}', flush=True)
            print("  (a demo token for user 'demo-user', valid one hour)", flush=True)
        elif config.verifier == "hmac":
            print(
                f"Issue tokens with: {ENV_PREFIX}SECRET=<your secret> uvgate token --sub <user id>",
                flush=True,
            )
        if config.pusher:
            from gateway.pusher import build_store

            for app in build_store(config):
                print(
                    f"Pusher app {app.id!r}: {scheme}://{config.host}:{port}/app/{app.key}"
                    f"?protocol=7, HTTP API at /apps/{app.id}/",
                    flush=True,
                )

    try:
        return run(config, on_ready, reload=reloader(args.config, overrides))
    except OSError as exc:
        print(f"uvgate: cannot serve: {_one_line(exc)}", file=sys.stderr)
        return 1


def _token(args: argparse.Namespace) -> int:
    """``uvgate token``: refuse what would print a useless or unsafe token."""
    secret = args.secret if args.secret is not None else os.environ.get(env_name("secret"))
    problem = None
    try:
        ttl = float(args.ttl)
    except ValueError:
        ttl = math.nan
    if secret is None:
        problem = f"no secret: pass --secret or set {env_name('secret')}"
    elif not secret:
        where = "--secret" if args.secret is not None else env_name("secret")
        problem = f"{where} is empty: a token signed with an empty secret proves nothing"
    elif not args.sub.strip():
        problem = "--sub must name a user (it is empty)"
    elif not math.isfinite(ttl) or not 1 <= ttl <= MAX_TOKEN_TTL:
        problem = f"--ttl must be a number of seconds from 1 to {MAX_TOKEN_TTL}, not {args.ttl!r}"
    elif not all(g.strip() for g in args.group):
        problem = "--group must not be empty"
    if problem is not None:
        print(f"uvgate: token error: {problem}", file=sys.stderr)
        return 2
    assert secret is not None
    print(issue_token(secret, args.sub, ttl, groups=args.group))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(arguments)
    except UsageError as exc:
        command = arguments[0] if arguments[:1] in (["serve"], ["token"]) else None
        kind = "configuration error" if command == "serve" else "usage error"
        see = f"uvgate {command} --help" if command else "uvgate --help"
        print(f"uvgate: {kind}: {_one_line(exc)} (see {see})", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token(args)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
