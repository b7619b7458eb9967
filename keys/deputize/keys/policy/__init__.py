"""The delegation policy: roles, agent profiles, agent-to-agent rules, tiers and conditions.

Pure data and one decision function, so the authorization server (at issuance and at
``/decide``) and a resource server (``Verifier.decide``) decide identically from the same
policy document.  :func:`load_policy` validates a document (a mapping, as YAML or JSON gives
it) and compiles its conditions once; :func:`decide` answers one question.
"""

from __future__ import annotations

from deputize.keys.policy.decide import Decision, Question, decide
from deputize.keys.policy.load import PolicyError, load_policy
from deputize.keys.policy.model import (
    AUTONOMOUS,
    FORBIDDEN,
    SUPERVISED,
    TIERS,
    Permission,
    Policy,
    Profile,
)
from deputize.keys.policy.tokens import decide_for_token, scope_permissions

__all__ = [
    "AUTONOMOUS",
    "FORBIDDEN",
    "SUPERVISED",
    "TIERS",
    "Decision",
    "Permission",
    "Policy",
    "PolicyError",
    "Profile",
    "Question",
    "decide",
    "decide_for_token",
    "load_policy",
    "scope_permissions",
]
