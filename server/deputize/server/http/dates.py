"""One way to show a moment to a person: ``2026-12-04 17:40 UTC``.

Pages and the command line used to differ ("4 December 2026" on the consent page, "04 December
2026" on the account page, no zone at all in ``deputize audit``), so a reader could not tell
whether two dates were the same day, nor at what hour a consent ran out.  Every moment shown to
a person now goes through :func:`when`: ISO 8601 date order (no month names to translate or
misread as day-first), a 24-hour time, and the zone spelled out.  Always UTC: the server does
not know the reader's zone, and a fixed zone keeps logs, pages and the CLI comparable.
"""

from __future__ import annotations

import time


def when(timestamp: float, *, seconds: bool = False) -> str:
    """``timestamp`` (Unix seconds) as ``YYYY-MM-DD HH:MM UTC``; with ``seconds``, as
    ``YYYY-MM-DD HH:MM:SS UTC`` (listings where events a few seconds apart must stay apart)."""
    layout = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return time.strftime(layout, time.gmtime(timestamp))
