"""Turn the config's ``verifier = "..."`` and its options into a verifier object.

A spec is a built-in name (``none``, ``static``, ``hmac``, ``jwt``, ``http``) or a
dotted path ``package.module:Name`` naming

* a class: instantiated with the options as keyword arguments;
* a function or coroutine function ``verify(message, conn) -> Identity``: wrapped
  in a ``FunctionVerifier`` whose ``name`` is the spec (takes no options);
* an object that already has a ``verify`` method: used as is (takes no options).

Every problem is a ``ValueError`` whose message names the spec and the option.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .anonymous import AnonymousVerifier
from .base import BaseVerifier, ConnectionInfo, Verifier, VerifyResult
from .hmac_token import HmacVerifier
from .http_callback import HttpVerifier
from .jwt_token import JwtVerifier
from .static import StaticVerifier

BUILTIN_VERIFIERS: dict[str, type[BaseVerifier]] = {
    "none": AnonymousVerifier,
    "static": StaticVerifier,
    "hmac": HmacVerifier,
    "jwt": JwtVerifier,
    "http": HttpVerifier,
}
DEFAULT_VERIFIER = "hmac"


class FunctionVerifier(BaseVerifier):
    """A plain ``verify(message, conn)`` function (sync or async) as a verifier."""

    def __init__(
        self, name: str, func: Callable[[Mapping[str, Any], ConnectionInfo], VerifyResult]
    ):
        self.name = name
        self.func = func

    def verify(self, message: Mapping[str, Any], conn: ConnectionInfo) -> VerifyResult:
        return self.func(message, conn)

    def __repr__(self) -> str:
        return f"FunctionVerifier({self.name!r})"


def _check_options(spec: str, cls: type, options: Mapping[str, Any]) -> None:
    """Missing or unknown options, reported by option name before calling ``cls``."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # builtins / C classes: let the call report
        return
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for p in params:
        if p.name in names and p.default is p.empty and p.name not in options:
            raise ValueError(f"verifier {spec!r} needs option {p.name!r}")
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unknown = sorted(set(options) - names)
        if unknown:
            known = ", ".join(sorted(names)) or "none"
            raise ValueError(f"verifier {spec!r} has no option {unknown[0]!r} (options: {known})")


def _resolve(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"verifier {spec!r}: expected 'package.module:Name'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"verifier {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"verifier {spec!r}: {module_name!r} has no {attr!r}") from None
    return obj


def load_verifier(spec: str, options: Mapping[str, Any] | None = None) -> Verifier:
    """Build the verifier named by ``spec`` with ``options`` (the config's table)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("verifier spec must be a non-empty string")
    spec = spec.strip()
    opts = dict(options or {})
    bad_keys = [k for k in opts if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"verifier {spec!r}: option names must be strings")

    cls = BUILTIN_VERIFIERS.get(spec)
    if cls is not None:
        _check_options(spec, cls, opts)
        return cls(**opts)

    if ":" not in spec:
        hint = " (use 'package.module:Name' for your own)" if "." in spec else ""
        raise ValueError(
            f"unknown verifier {spec!r}; built-in: {', '.join(BUILTIN_VERIFIERS)}{hint}"
        )

    obj = _resolve(spec)
    if isinstance(obj, type):
        _check_options(spec, obj, opts)
        try:
            verifier: Verifier = obj(**opts)
        except TypeError as exc:
            raise ValueError(f"verifier {spec!r}: {exc}") from exc
    elif callable(obj) and not hasattr(obj, "verify"):
        if opts:
            raise ValueError(f"verifier {spec!r} is a function and takes no options")
        return FunctionVerifier(spec, obj)
    else:
        if opts:
            raise ValueError(f"verifier {spec!r} is an object and takes no options")
        verifier = obj

    if not callable(getattr(verifier, "verify", None)):
        raise ValueError(f"verifier {spec!r} has no verify(message, conn) method")
    # The gateway reads these two attributes; fill them in for minimal classes.
    for attr, default in (("name", spec), ("requires_message", True)):
        if not hasattr(verifier, attr):
            try:
                setattr(verifier, attr, default)
            except AttributeError:
                raise ValueError(f"verifier {spec!r} needs a {attr!r} attribute") from None
    return verifier
