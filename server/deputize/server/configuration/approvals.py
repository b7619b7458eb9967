"""The ``approvals`` section: how long a supervised action waits for its person (OpenID CIBA,
poll mode), how often an agent may ask, what an approval yields, and the webhook that tells a
platform a request is waiting (``approvals/webhook.py``).

Read here rather than in ``settings.py`` to keep that module small; ``approvals/`` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from deputize.server.configuration.sections import ConfigError, Section

#: The webhook's HMAC key is a secret like a client's: long enough that it cannot be guessed.
MIN_WEBHOOK_SECRET: Final = 32


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    url: str
    """Where each new request is POSTed (https, or http on a loopback host)."""
    secret_env: str
    """The environment variable the HMAC key came from (named in docs and errors, never the
    key itself)."""
    secret: bytes = field(repr=False)
    """The HMAC-SHA256 key signing each delivery; kept out of ``repr`` so it is never logged."""
    timeout: float = 3.0
    """Seconds one attempt may take, connecting to the last byte of the answer's headers."""
    attempts: int = 3
    """Attempts in all (connection errors, timeouts, 5xx and 429 are tried again)."""


@dataclass(frozen=True, kw_only=True)
class ApprovalSettings:
    request_lifetime: int = 600
    """Seconds a request waits for the person before it expires (CIBA ``expires_in``)."""
    interval: int = 5
    """Seconds an agent waits between polls (CIBA ``interval``; faster is ``slow_down``)."""
    token_lifetime: int = 300
    """Seconds the token an approval yields lives, at most (never beyond its parent)."""
    approver_roles: tuple[str, ...] = ()
    """Policy roles whose holders may approve requests for anyone (besides the person)."""
    webhook: WebhookSettings | None = None
    """Told of each new request, so a platform can reach the person (None: nobody is told)."""


def parse_approvals(section: Section, env: Mapping[str, str]) -> ApprovalSettings:
    settings = ApprovalSettings(
        request_lifetime=section.integer("request_lifetime", 600, low=30, high=86_400),
        interval=section.integer("interval", 5, low=1, high=60),
        token_lifetime=section.integer("token_lifetime", 300, low=10, high=3600),
        approver_roles=section.strings("approver_roles"),
        webhook=parse_webhook(section.section("webhook"), env),
    )
    section.done()
    return settings


def parse_webhook(section: Section, env: Mapping[str, str]) -> WebhookSettings | None:
    """``approvals.webhook``; every key is read (and unknown ones refused) even without a URL."""
    url = section.string("url")
    secret_env = section.string("secret_env")
    timeout = section.seconds("timeout", 3.0, low=1, high=30)
    attempts = section.integer("attempts", 3, low=1, high=10)
    section.done()
    if url is None:
        if section.data:
            raise ConfigError(f"{section.key('url')}: required when {section.path} is set")
        return None
    _check_url(url, section.key("url"))
    if secret_env is None:
        raise ConfigError(
            f"{section.key('secret_env')}: required with a url: the name of the environment "
            "variable holding the key that signs each delivery"
        )
    secret = env.get(secret_env)
    if not secret:
        raise ConfigError(f"{section.key('secret_env')}: the variable {secret_env} is not set")
    if len(secret) < MIN_WEBHOOK_SECRET:
        raise ConfigError(
            f"{section.key('secret_env')}: {secret_env} must hold at least "
            f"{MIN_WEBHOOK_SECRET} characters"
        )
    return WebhookSettings(
        url=url, secret_env=secret_env, secret=secret.encode("utf-8"), timeout=timeout,
        attempts=attempts,
    )  # fmt: skip


def _check_url(url: str, key: str) -> None:
    """https, or plain http only to this machine (a platform's relay beside the server):
    the body names a person and what an agent wants to do for them."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"{key}: not a URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not host or parts.fragment:
        raise ConfigError(f"{key}: expected an http(s) URL without fragment, got {url!r}")
    if parts.scheme == "http" and not (host in ("localhost", "::1") or host.startswith("127.")):
        raise ConfigError(f"{key}: must use https (plain http is allowed only for localhost)")
