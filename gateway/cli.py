"""Command line: ``uvgate serve`` and ``uvgate token`` (also ``python -m gateway``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from gateway.config import ENV_PREFIX, Config, build_config
from gateway.tokens import issue_token


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, generated so flags and config can never drift."""
    for f in dataclasses.fields(Config):
        if not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        help_text = f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}]"
        default = f.default if f.default is not dataclasses.MISSING else None
        if default not in (None, [], ""):
            help_text += f" (default: {default})"
        if kind.startswith("bool"):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uvgate",
        description="uvgate: a uvloop WebSocket gateway with first-message authentication.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML configuration file", default=None)
    _add_config_flags(serve)
    token = sub.add_parser("token", help="issue a token for the built-in hmac verifier")
    token.add_argument("--secret", required=True, help="the gateway's hmac secret")
    token.add_argument("--sub", required=True, help="user id to put in the token")
    token.add_argument("--ttl", type=float, default=3600, help="seconds of validity (default 3600)")
    token.add_argument(
        "--group", action="append", default=[], help="group to join on auth (repeatable)"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import setup_logging
    from gateway.workers import run

    overrides: dict[str, Any] = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Config)
        if f.metadata.get("cli", True) and getattr(args, f.name, None) is not None
    }
    try:
        config = build_config(args.config, overrides)
    except (ValueError, OSError) as exc:
        print(f"uvgate: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    demo_secret = False
    if config.verifier == "hmac" and not config.secret and "secret" not in config.verifier_options:
        config = config.replace(secret=secrets.token_urlsafe(32))
        demo_secret = True
    # Like ``python -m``: a ``pkg.mod:Name`` verifier or app in the current
    # directory can be loaded by the installed ``uvgate`` script too.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        # Building a gateway (not started) loads the verifier and the app, and the
        # app store checks the Pusher apps, so a bad option is one clear line here
        # instead of a traceback in every worker.
        from gateway.pusher import build_store
        from gateway.server import Gateway

        Gateway(config.replace(pusher=False))
        if config.pusher:
            build_store(config)
    except (ValueError, TypeError, OSError) as exc:
        print(f"uvgate: configuration error: {exc}", file=sys.stderr)
        return 2

    def on_ready(port: int) -> None:
        scheme = "wss" if config.certfile else "ws"
        print(
            f"uvgate listening on {scheme}://{config.host}:{port}{config.ws_path} "
            f"(verifier={config.verifier}, app={config.app}, workers={config.workers})",
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
                "Issue tokens with: uvgate token --secret <your secret> --sub <user id>", flush=True
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
        return run(config, on_ready)
    except OSError as exc:
        print(f"uvgate: cannot serve: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token":
        print(issue_token(args.secret, args.sub, args.ttl, groups=args.group))
        return 0
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
