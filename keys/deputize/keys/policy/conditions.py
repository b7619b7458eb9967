"""Conditions in CEL, compiled once with ``common-expression-language`` (Rust bindings).

Chosen over ``cel-python`` because it evaluates about 300 times faster here (0.5 µs against
160 µs for one small expression, ../shared/FACTS.md and docs/decisions/0015) and exposes the
names an expression uses, so a misspelled variable is refused at start instead of silently
dropping the rule.  The library is imported when a policy has a condition, so ``deputize.keys``
does not need it otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: What a condition may name, and the fields of each (checked where the source spells
#: ``variable.field``).  ``now`` is a timestamp (UTC).
VARIABLES: Final[Mapping[str, frozenset[str] | None]] = {
    "person": frozenset({"id", "roles"}),
    "chain": None,  # list of agent ids, oldest first
    "agent": None,  # the agent acting now ("" when the person acts)
    "task": None,
    "action": None,
    "resource": frozenset({"namespace", "path", "segments", "text"}),
    "details": None,
    "now": None,
}
_BINDERS = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_FIELDS = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\.\s*([A-Za-z_]\w*)(?!\s*\()")
#: Results a condition remembers, by the values it reads (bounded: the values come from
#: requests).  A question new to the decision cache (a new person, task or resource) mostly
#: asks each condition about values already seen: the same chain, the same roles.
MEMO_SIZE: Final = 1024


class ConditionError(ValueError):
    """A condition that does not compile or names what does not exist."""


class EvaluationError(RuntimeError):
    """A condition failed at run time (the decision denies)."""


@dataclass(frozen=True, slots=True)
class Condition:
    source: str
    program: Any
    names: tuple[tuple[str, frozenset[str] | None], ...]
    """The variables the expression uses, and of an object variable the fields it reads (None:
    all of it).  Only those are handed over: converting a value into CEL costs microseconds
    (a four-field ``resource`` 10 µs, its ``text`` alone 3 µs), and a decision should not pay
    for what a condition ignores."""
    memo: dict[Any, bool] | None = None
    """Results by the values read (CEL is a pure function of them: converting the values and
    evaluating costs about 40,000 instructions a condition); None when ``now`` is read."""

    def holds(self, context: Mapping[str, Any]) -> bool:
        """True or False; anything else (an error, a non-boolean) is :class:`EvaluationError`,
        never remembered (each one denies and is audited)."""
        given: dict[str, Any] = {}
        for name, fields in self.names:
            if name in context:
                value = context[name]
                given[name] = value if fields is None else {f: value[f] for f in fields}
        memo = self.memo
        key = None if memo is None else _frozen(given)
        if key is not None:
            known = memo.get(key)  # type: ignore[union-attr]
            if known is not None:
                return known
        result = self._evaluate(given)
        if key is not None:
            assert memo is not None
            if len(memo) >= MEMO_SIZE:
                del memo[next(iter(memo))]  # the oldest entry
            memo[key] = result
        return result

    def _evaluate(self, given: dict[str, Any]) -> bool:
        try:
            result = self.program.execute(given)
        except Exception as exc:  # the library raises several types; every one denies
            raise EvaluationError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if not isinstance(result, bool):
            raise EvaluationError("the condition did not give true or false")
        return result


def compile_condition(source: str) -> Condition:
    """Compile ``source`` and check every name it uses, or :class:`ConditionError`."""
    try:
        import cel
    except ImportError:  # pragma: no cover - an install without the policy extra
        raise ConditionError(
            "conditions need the 'common-expression-language' package (pip install "
            "'deputize[policy]')"
        ) from None
    if not source.strip() or len(source) > 4096:
        raise ConditionError("a condition must be a non-empty CEL expression (at most 4096 chars)")
    try:
        program = cel.compile(source)
    except Exception as exc:  # ValueError with the parser's message
        raise ConditionError(f"does not compile: {str(exc).splitlines()[0][:200]}") from None
    binders = set(_BINDERS.findall(source))
    unknown = sorted(v for v in program.variables() if v not in VARIABLES and v not in binders)
    if unknown:
        raise ConditionError(
            f"names unknown variable {unknown[0]!r} (known: {', '.join(sorted(VARIABLES))})"
        )
    code = _STRINGS.sub('""', source)
    read: dict[str, set[str]] = {}
    for name, member in _FIELDS.findall(code):
        fields = VARIABLES.get(name)
        if fields is not None and member not in fields and name not in binders:
            raise ConditionError(
                f"names unknown field {name}.{member} (known: {', '.join(sorted(fields))})"
            )
        read.setdefault(name, set()).add(member)
    names: list[tuple[str, frozenset[str] | None]] = []
    for name in program.variables():
        if name not in VARIABLES or name in binders:
            continue
        fields = VARIABLES[name]
        whole = fields is None or re.search(rf"(?<![\w.]){name}\b(?!\s*\.\s*\w)", code)
        names.append((name, None if whole else frozenset(read.get(name, ()))))
    reads_now = any(name == "now" for name, _ in names)
    return Condition(source, program, tuple(names), None if reads_now else {})


def _frozen(value: Any) -> Any:
    """``value`` as a hashable key that CEL would tell apart (``1``, ``1.0`` and ``true`` are
    different values there); None for anything large or unexpected (then not remembered)."""
    if isinstance(value, str):
        return value if len(value) <= 1024 else None
    if isinstance(value, bool | int | float) or value is None:
        return (type(value), value)
    if isinstance(value, list | tuple) and len(value) <= 32:
        parts = tuple(_frozen(v) for v in value)
        return None if None in parts else ("list", parts)
    if isinstance(value, dict) and len(value) <= 32:
        items = tuple((k, _frozen(v)) for k, v in sorted(value.items()))
        return None if any(v is None for _, v in items) else ("map", items)
    return None
