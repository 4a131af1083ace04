"""``static``: a fixed table of tokens, from the config and/or a TOML/JSON file.

Each entry maps a token to a user id, or to ``{user, info, groups}``::

    [verifier_options.tokens]
    "s3cr3t-alice" = "alice"
    "s3cr3t-bot" = { user = "bot", groups = ["ops"], info = { role = "bot" } }

Tokens are stored by their SHA-256 digest, never in clear: a lookup hashes the
presented token and probes the dict with the digest, so the comparison time does
not depend on how many leading characters of a real token the peer guessed.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocol import closecodes

from . import _options
from .base import AuthFailed, BaseVerifier, ConnectionInfo, Identity, token_of


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _entry(where: str, value: Any) -> Identity:
    """An ``Identity`` from ``"user"`` or ``{user, info?, groups?}``; ``where`` names it."""
    if isinstance(value, str) and value:
        return Identity(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a user id or a table {{user, info, groups}}")
    unknown = set(value) - {"user", "info", "groups"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    user, info, groups = value.get("user"), value.get("info"), value.get("groups", ())
    if not isinstance(user, str) or not user:
        raise ValueError(f"{where}: 'user' must be a non-empty string")
    if info is not None and not isinstance(info, Mapping):
        raise ValueError(f"{where}: 'info' must be a table")
    if not isinstance(groups, list | tuple) or not all(isinstance(g, str) and g for g in groups):
        raise ValueError(f"{where}: 'groups' must be a list of non-empty strings")
    return Identity(user, dict(info) if info is not None else None, tuple(groups))


def _read_file(path: Path) -> Any:
    """Parse a tokens file: TOML for ``.toml``, JSON otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(
            f"verifier 'static': cannot read tokens_file {str(path)!r}: {exc}"
        ) from exc
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors; their
        # messages carry line/column only, not the content (which holds secrets).
        raise ValueError(
            f"verifier 'static': cannot parse tokens_file {str(path)!r}: {exc}"
        ) from exc


class StaticVerifier(BaseVerifier):
    """Tokens from a fixed table.

    Options:
        tokens: table token -> user id, or token -> {user, info, groups}.
        tokens_file: path to a ``.toml`` or ``.json`` file holding the same table.
    At least one is needed; a token present in both is a config error.
    """

    name = "static"

    def __init__(
        self,
        *,
        tokens: Mapping[str, Any] | None = None,
        tokens_file: str | Path | None = None,
    ) -> None:
        if tokens is None and tokens_file is None:
            raise ValueError("verifier 'static' needs option 'tokens' or 'tokens_file'")
        self._table: dict[bytes, Identity] = {}
        if tokens is not None:
            if not isinstance(tokens, Mapping):
                raise _options.bad(self.name, "tokens", "a table", tokens)
            self._add(tokens, "option 'tokens'")
        if tokens_file is not None:
            if not isinstance(tokens_file, str | Path) or not str(tokens_file):
                raise _options.bad(self.name, "tokens_file", "a path", tokens_file)
            path = Path(tokens_file)
            table = _read_file(path)
            if not isinstance(table, Mapping):
                raise ValueError(
                    f"verifier 'static': tokens_file {str(path)!r} must hold a table of tokens"
                )
            self._add(table, f"tokens_file {str(path)!r}")

    def _add(self, table: Mapping[Any, Any], source: str) -> None:
        for n, (token, value) in enumerate(table.items(), 1):
            # Entries are named by position, never by token: the token is the secret.
            where = f"verifier 'static' {source} entry #{n}"
            if not isinstance(token, str) or not token:
                raise ValueError(f"{where}: the token must be a non-empty string")
            key = _digest(token)
            if key in self._table:
                raise ValueError(f"{where}: duplicate token")
            self._table[key] = _entry(where, value)

    def __len__(self) -> int:
        return len(self._table)

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> Identity:
        identity = self._table.get(_digest(token_of(message)))
        if identity is None:
            raise AuthFailed(closecodes.AUTH_FAILED, "unknown token")
        return identity
