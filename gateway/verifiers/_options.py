"""Checks for verifier options as they come out of a TOML/JSON config.

Every message names the verifier and the option, and never echoes the value: an
option may be a secret, and config errors end up in logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def needs(verifier: str, option: str) -> ValueError:
    """The error for a missing required option."""
    return ValueError(f"verifier {verifier!r} needs option {option!r}")


def bad(verifier: str, option: str, expected: str, value: Any) -> ValueError:
    """The error for an option of the wrong type or out of range (value not shown)."""
    return ValueError(
        f"verifier {verifier!r} option {option!r} must be {expected}, got {type(value).__name__}"
    )


def string(verifier: str, option: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise bad(verifier, option, "a non-empty string", value)
    return value


def number(verifier: str, option: str, value: Any, *, positive: bool = False) -> float:
    """A finite number >= 0 (> 0 with ``positive``); TOML gives int or float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(verifier, option, "a number", value)
    if value < 0 or (positive and value == 0):
        raise ValueError(
            f"verifier {verifier!r} option {option!r} must be {'> 0' if positive else '>= 0'}"
        )
    return float(value)


def integer(verifier: str, option: str, value: Any, *, minimum: int = 1) -> int:
    """An int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(verifier, option, "an integer", value)
    if value < minimum:
        raise ValueError(f"verifier {verifier!r} option {option!r} must be >= {minimum}")
    return value


def strings(verifier: str, option: str, value: Any) -> tuple[str, ...]:
    """A list of non-empty strings; a single string is a list of one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise bad(verifier, option, "a string or a list of non-empty strings", value)
    return tuple(value)


def str_mapping(verifier: str, option: str, value: Any) -> dict[str, str]:
    """A mapping of non-empty strings to strings (e.g. HTTP headers)."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise bad(verifier, option, "a table of strings", value)
    return dict(value)
