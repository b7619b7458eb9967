"""The live delegation trees of one person, for the account page: person -> agent -> sub-agent.

Roots are the rows whose parent is not among the live rows; trees are grouped by task.  Depth
and size are bounded, so a pathological ledger cannot make the page unbounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from deputize.server.storage.tokens import TokenRecord

MAX_DEPTH = 16
MAX_NODES = 1000


@dataclass(slots=True)
class Node:
    jti: str
    holder: str
    kind: str
    actor: str | None
    task: str | None
    jkt: str | None
    issued_at: int
    expires_at: int
    children: list[Node] = field(default_factory=list)

    @property
    def jkt_short(self) -> str | None:
        return f"{self.jkt[:8]}…" if self.jkt else None

    def count(self) -> int:
        return 1 + sum(child.count() for child in self.children)


@dataclass(slots=True)
class Task:
    task: str | None
    roots: list[Node]


def build(rows: Iterable[TokenRecord], name: Callable[[str], str]) -> list[Task]:
    """Trees of ``rows`` grouped by task, in order of first appearance; ``name`` words a
    client ID."""
    by_jti = {r.jti: r for r in rows}
    children: dict[str, list[TokenRecord]] = {}
    roots: list[TokenRecord] = []
    for r in by_jti.values():
        if r.parent_jti is not None and r.parent_jti in by_jti and r.parent_jti != r.jti:
            children.setdefault(r.parent_jti, []).append(r)
        else:
            roots.append(r)
    budget = [MAX_NODES]

    def node(r: TokenRecord, depth: int) -> Node:
        budget[0] -= 1
        made = Node(
            r.jti, name(r.client_id), r.kind, r.actor, r.task, r.jkt, r.issued_at, r.expires_at
        )
        if depth < MAX_DEPTH:
            for child in children.get(r.jti, ()):
                if budget[0] <= 0:
                    break
                made.children.append(node(child, depth + 1))
        return made

    tasks: dict[str | None, Task] = {}
    for r in roots:
        if budget[0] <= 0:
            break
        tasks.setdefault(r.task, Task(r.task, [])).roots.append(node(r, 1))
    return list(tasks.values())


def subtree(rows: Iterable[TokenRecord], jti: str) -> Node | None:
    """The live node ``jti`` with everything below it, or None when it is not among ``rows``."""
    for task in build(rows, lambda client_id: client_id):
        found = _find(task.roots, jti)
        if found is not None:
            return found
    return None


def _find(nodes: list[Node], jti: str) -> Node | None:
    for n in nodes:
        if n.jti == jti:
            return n
        found = _find(n.children, jti)
        if found is not None:
            return found
    return None
