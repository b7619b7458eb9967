"""The ``policy`` key: a policy written inline, or the path of a YAML or JSON file holding it.

Read at start (and again on ``SIGHUP``): a policy that does not load stops the server with a
message naming the key path inside the policy (``policy.conditions[1].when: ...``) and, for a
file, the file.  No policy at all means what it meant before the policy existed: scopes,
consent and the delegation rules of the configuration decide alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deputize.keys.policy import Policy, PolicyError, load_policy
from deputize.server.configuration.sections import ConfigError, Section
from deputize.server.configuration.yaml_keys import load_yaml

#: A policy file larger than this is refused (it is read at every start and SIGHUP).
MAX_POLICY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PolicySource:
    policy: Policy
    file: Path | None
    """The file it came from (None: written inline in the configuration)."""


def read_policy(raw: Any, *, base: Path, key: str = "policy") -> PolicySource | None:
    """The policy the configuration's ``key`` gives, or None when there is none."""
    if raw is None:
        return None
    if isinstance(raw, str):
        file = (base / raw).resolve()
        return PolicySource(_load(_read_file(file, key), f"{key} ({file})"), file)
    if isinstance(raw, dict):
        return PolicySource(_load(raw, key), None)
    raise ConfigError(f"{key}: expected a mapping (the policy) or the path of a policy file")


def load_policy_file(path: Path) -> Policy:
    """A policy file on its own (``deputize policy check --policy FILE``, ``policy import``)."""
    return _load(_read_file(path, str(path)), str(path))


def _load(document: Any, where: str) -> Policy:
    try:
        return load_policy(document, root=where)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def _read_file(file: Path, key: str) -> Any:
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read the policy file {file} ({exc.strerror})") from None
    if len(data) > MAX_POLICY_BYTES:
        raise ConfigError(f"{key}: the policy file {file} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: the policy file {file} is not UTF-8") from None
    return load_yaml(text, f"{key}: the policy file {file}")


def read_role_mapping(issuer: Section) -> tuple[str | None, dict[str, tuple[str, ...]]]:
    """``trusted_issuers[].roles_claim`` and ``.roles``: which claim of the issuer's tokens
    names the person's groups, and the policy roles each value gives."""
    claim = issuer.string("roles_claim")
    raw = issuer.raw("roles") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{issuer.key('roles')}: expected a mapping of claim values to roles")
    roles: dict[str, tuple[str, ...]] = {}
    for value, given in raw.items():
        given = [given] if isinstance(given, str) else given
        if not isinstance(given, list) or not all(isinstance(r, str) and r for r in given):
            raise ConfigError(f"{issuer.key('roles')}.{value}: expected a role or a list of roles")
        roles[str(value)] = tuple(given)
    if roles and claim is None:
        raise ConfigError(f"{issuer.key('roles_claim')}: required with {issuer.key('roles')}")
    return claim, roles
