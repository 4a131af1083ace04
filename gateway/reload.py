"""What a reload (SIGHUP) may change in a running gateway, and what needs a restart.

A reload reads the same configuration again (file, environment, flags) and applies what
can change under live connections:

* ``certfile``/``keyfile``: the new certificate and key are loaded into the listening
  TLS context, so new handshakes use them and existing TLS connections go on (a renewed
  certificate usually keeps its paths: the files are read again on every reload);
* ``verifier``, ``verifier_options``, ``secret``: a new verifier judges the next
  authentications; the old one finishes the verifications it started, then is closed;
* ``apps``, ``app_id``, ``app_key``, ``app_secret``: the Pusher app store is replaced;
  new connections and API requests see the new apps (a removed app is refused, 4001 and
  404), sockets of an app that is still there use its new settings (a rotated secret
  signs their next subscriptions), sockets of a removed app go on;
* ``log_level``, ``log_format``: applied by the process that owns logging (the CLI).

Everything else (host, port, workers, limits, timeouts...) shapes listeners, processes or
objects built once; a change there is logged as needing a restart and the running value
is kept. So is turning TLS on or off (the listener would change).

Nothing is applied unless everything checks out first (``Gateway.reload``): a config
that fails validation changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway.config import Config

__all__ = ["RELOADABLE", "ReloadPlan", "plan_reload"]

TLS_FIELDS = frozenset({"certfile", "keyfile"})
VERIFIER_FIELDS = frozenset({"verifier", "verifier_options", "secret"})
APP_FIELDS = frozenset({"apps", "app_id", "app_key", "app_secret"})
LOG_FIELDS = frozenset({"log_level", "log_format"})
RELOADABLE = TLS_FIELDS | VERIFIER_FIELDS | APP_FIELDS | LOG_FIELDS


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The config to run with after a reload, and what changed."""

    config: Config  # the new values where they can change, the running ones elsewhere
    changed: tuple[str, ...]  # reloadable options whose value changed
    restart: tuple[str, ...]  # options changed in the file that need a restart

    @property
    def tls(self) -> bool:
        """Reload the certificate (always when TLS is on: same paths, new files)."""
        return self.config.certfile is not None

    @property
    def verifier(self) -> bool:
        return any(name in VERIFIER_FIELDS for name in self.changed)

    @property
    def apps(self) -> bool:
        return any(name in APP_FIELDS for name in self.changed)

    @property
    def logging(self) -> bool:
        return any(name in LOG_FIELDS for name in self.changed)


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Split the differences between ``running`` and ``new``."""
    changed: list[str] = []
    restart: list[str] = []
    keep: dict[str, object] = {}
    tls_toggled = (running.certfile is None) != (new.certfile is None)
    for field in dataclasses.fields(Config):
        name = field.name
        old_value, new_value = getattr(running, name), getattr(new, name)
        if old_value == new_value:
            continue
        if name in RELOADABLE and not (name in TLS_FIELDS and tls_toggled):
            changed.append(name)
        else:
            restart.append(name)
            keep[name] = old_value
    return ReloadPlan(new.replace(**keep), tuple(changed), tuple(restart))
