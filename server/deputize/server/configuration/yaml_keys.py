"""YAML 1.2 §3.2.1.1: "The content of a mapping node is an unordered set of key/value node
pairs, with the restriction that each of the keys is unique."

PyYAML does not enforce it: of two equal keys it keeps the last, silently, so a second
``database:`` block further down a long file would replace the first without a word.  The
check walks the composed node tree, where each key still has its line.
"""

from __future__ import annotations

from typing import Any

import yaml

from deputize.server.configuration.sections import ConfigError

_MERGE = "tag:yaml.org,2002:merge"


class RepeatedKeyError(ValueError):
    """A mapping gives one key twice; the message names its path (``clients[1].scopes``) and
    both lines, in the words of the other configuration errors."""


def refuse_repeated_keys(node: yaml.Node | None) -> None:
    """Raise :class:`RepeatedKeyError` for the first key given twice in one mapping of ``node``."""
    _walk(node, "", set())


def _walk(node: yaml.Node | None, path: str, seen: set[int]) -> None:
    if node is None or id(node) in seen:  # an alias of a node already walked (or of itself)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}[{i}]", seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == _MERGE:  # `<<: *anchor`: keys this mapping may then override
                continue
            name = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            if key.value in lines:
                first = lines[key.value]
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise RepeatedKeyError(f"{name}: given twice ({where})")
            lines[key.value] = line
            _walk(value, name, seen)


def load_yaml(text: str, what: str) -> Any:
    """``text`` parsed (JSON is YAML too), refusing a key given twice; ``what`` starts every
    message (``deputize.yaml``, ``policy: the policy file p.yaml``)."""
    try:
        document = yaml.safe_load(text)
        refuse_repeated_keys(yaml.compose(text, Loader=yaml.SafeLoader))
    except RepeatedKeyError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what}: not valid YAML{where}") from None
    return document
