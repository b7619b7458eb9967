"""Who asks for what, in words the person reads on their account page (and operators in
``deputize approvals list``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def chain_in_words(actors: Sequence[str], *, person: str = "you") -> str:
    """``("scheduling-agent", "analysis-agent")`` → "analysis-agent, acting for
    scheduling-agent, acting for you": the agent asking first, the person last."""
    return ", acting for ".join([*reversed(actors), person])


def wants_in_words(details: Sequence[dict[str, Any]]) -> str:
    """ "delete documents:/q3/report.pdf; read documents:/q3/**"."""
    said = []
    for entry in details:
        actions = " and ".join(str(a) for a in entry.get("actions", ()))
        where = ", ".join(
            str(r) for k, v in entry.items() if isinstance(v, list) and k != "actions" for r in v
        )
        limits = ", ".join(
            f"{k.replace('_', ' ')} at most {v}"
            for k, v in entry.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )
        said.append(f"{actions} {where}" + (f" ({limits})" if limits else ""))
    return "; ".join(said)


def request_in_words(actors: Sequence[str], details: Sequence[dict[str, Any]], person: str) -> str:
    return f"{chain_in_words(actors, person=person)}, wants to {wants_in_words(details)}"
