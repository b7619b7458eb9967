"""The ``approvals`` section: how long a supervised action waits for its person (OpenID CIBA,
poll mode), how often an agent may ask, and what an approval yields.

Read here rather than in ``settings.py`` to keep that module small; ``approvals/`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from deputize.server.configuration.sections import Section


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


def parse_approvals(section: Section) -> ApprovalSettings:
    settings = ApprovalSettings(
        request_lifetime=section.integer("request_lifetime", 600, low=30, high=86_400),
        interval=section.integer("interval", 5, low=1, high=60),
        token_lifetime=section.integer("token_lifetime", 300, low=10, high=3600),
        approver_roles=section.strings("approver_roles"),
    )
    section.done()
    return settings
