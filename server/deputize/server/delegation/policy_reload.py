"""Changing the delegation policy without a restart: ``SIGHUP`` reads it again.

The configuration file is read and validated as at start; its ``policy`` replaces the one in
use, and from the next request on every decision names the new policy's hash.  A file that no
longer loads changes nothing: the server keeps deciding with the last policy that loaded, and
says why in the log (an operator who broke the file must not stop every agent, nor silently
run without rules).  Only the policy is taken over; every other setting waits for a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from pathlib import Path

from deputize.server.context import ServerContext
from deputize.server.settings import ConfigError, load_settings

log = logging.getLogger("deputize.server")


def reload_policy(ctx: ServerContext) -> bool:
    """Read the policy again from the configuration file; False (and a log line) if it does
    not load, or if the server was not started from a file."""
    source = ctx.settings.source
    if not Path(source).is_file():
        log.error("policy not reloaded: the server was not started from a configuration file")
        return False
    try:
        fresh = load_settings(source)
    except ConfigError as exc:
        log.error("policy not reloaded, the previous one stays in force: %s", exc)
        return False
    before = ctx.settings.policy.policy.hash if ctx.settings.policy else "none"
    ctx.settings = dataclasses.replace(ctx.settings, policy=fresh.policy)
    after = fresh.policy.policy.hash if fresh.policy else "none"
    log.warning("policy reloaded: %s -> %s (other settings change only on restart)", before, after)
    return True


def reload_on_sighup(ctx: ServerContext) -> None:
    """Install the ``SIGHUP`` handler, where the platform and the thread allow one (a server
    started in a thread, as tests do, reloads by calling :func:`reload_policy`)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_policy, ctx)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        log.debug("no SIGHUP handler here; the policy reloads only on restart")
