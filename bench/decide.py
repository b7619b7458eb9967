"""Policy decisions per CPU-second, in-process (issue 16's goal: >= 20,000 per core).

A 50-rule policy with 5 CEL conditions (the shape of docs/policy.md's story, widened with
filler roles, profiles and tier rules), compiled once; the questions cycle through allowed,
supervised, forbidden, denied-by-profile and condition-checked cases so no single fast path
flatters the figure.  CPU time (``time.process_time``), not wall time: this machine is shared.

    .venv/bin/python bench/decide.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from policy_fixture import policy_document

from deputize.keys.policy import Question, decide, load_policy


def questions(salt: str = "") -> list[Question]:
    """The questions; a ``salt`` in every resource makes them new to the decision cache."""
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    chain = ("scheduling-agent",)
    sub = ("scheduling-agent", "analysis-agent")
    cases = [
        ("read", "documents:/q3/report.pdf", chain),
        ("delete", "documents:/q3/report.pdf", chain),
        ("read", "users:/bob", chain),
        ("read", "documents:/hr/salaries", chain),
        ("update", "documents:/q3/report.pdf", sub),
        ("read", "documents:/drafts/plan.txt", sub),
        ("update", "documents:/q3/notes.txt", chain),
        ("pay", "payments:/acme", chain),
    ]
    return [
        Question("alice", ("admin",), a, r + salt, chain=c, now=now, details={"amount": 120})
        for a, r, c in cases
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported)")
    args = parser.parse_args()
    document = policy_document()
    policy = load_policy(document)
    rule_count = sum(len(v) for k, v in document.items() if k != "tiers") + len(
        document["tiers"]["rules"]
    )
    asked = questions()
    outcomes = sorted({decide(policy, q).outcome for q in asked})
    print(f"policy: {rule_count} rules, {len(document['conditions'])} CEL conditions")
    print(f"outcomes covered: {', '.join(outcomes)}")
    for label, fresh in (("new questions (decided)", True), ("repeated (remembered)", False)):
        rates = []
        for _ in range(args.rounds):
            done, start, n = 0, time.process_time(), 0
            while time.process_time() - start < args.seconds:
                n += 1
                batch = questions(f"-{n}") if fresh else asked
                for q in batch:  # building 8 questions costs ~5 µs, under 3 % of deciding them
                    decide(policy, q)
                done += len(batch)
            rates.append(done / (time.process_time() - start))
        print(
            f"{label}: median {statistics.median(rates):,.0f} decisions per CPU-second "
            f"(rounds: {', '.join(f'{r:,.0f}' for r in rates)}); goal >= 20,000"
        )


if __name__ == "__main__":
    main()
