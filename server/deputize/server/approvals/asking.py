"""An agent asks its person to approve an action (OpenID CIBA Core 1.0 §7, poll mode).

The request names the person the chain acts for with ``login_hint_token``: an access token the
asking agent holds, acting for that person (CIBA §7.1 leaves its format to the server; ours is
a Deputize token, so the whole chain comes with it).  It carries the ``authorization_details``
(RFC 9396) to approve; each action on each resource must be one the delegation policy allows
or puts under supervision for this person and chain — anything it denies is refused now, so
nobody is asked to approve what could never be granted.  What is approved is exactly what was
asked: the person cannot be asked for more than the policy would let them give.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from deputize.keys.chain import AttenuationError
from deputize.keys.details import parse_details
from deputize.keys.policy import Policy, Question, decide
from deputize.server.clients.auth import find_client
from deputize.server.context import ServerContext
from deputize.server.delegation.permissions import Person, person_of, profile_of
from deputize.server.delegation.signin_details import NO_TYPES, normalised, parse_param
from deputize.server.errors import (
    InvalidAuthorizationDetailsError,
    InvalidBindingMessageError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from deputize.server.http.form import Form
from deputize.server.settings import CIBA, ClientConfig
from deputize.server.storage import approvals, audit
from deputize.server.storage.request_store import SqlStore
from deputize.server.storage.tokens import DELEGATION
from deputize.server.tokens.scopes import parse_scope
from deputize.server.tokens.subject_tokens import ACCESS_TOKEN_TYPE, read_subject

APPROVAL_REQUESTED: Final = "approval_requested"
MAX_BINDING_MESSAGE: Final = 128
_HINTS: Final = ("login_hint_token", "id_token_hint", "login_hint")


@dataclass(frozen=True, slots=True)
class Asked:
    auth_req_id: str
    expires_in: int
    interval: int
    request: approvals.ApprovalRequest
    """What was stored, for the webhook to announce once the transaction commits."""


async def ask(
    ctx: ServerContext, store: SqlStore, client: ClientConfig, form: Form, now: int
) -> Asked:
    settings = ctx.settings.approvals
    if CIBA not in client.grant_types:
        raise UnauthorizedClientError(f"this client may not use the {CIBA} grant")
    scopes = parse_scope(form.get("scope")) or []
    if "openid" not in scopes:  # CIBA §7.1: "MUST therefore contain the openid scope value"
        raise InvalidRequestError("scope must contain openid (CIBA §7.1)")
    hints = [h for h in _HINTS if form.get(h) is not None]
    if len(hints) != 1:
        raise InvalidRequestError("send exactly one of login_hint_token, id_token_hint, login_hint")
    if hints[0] != "login_hint_token":
        raise InvalidRequestError(
            "name the person with login_hint_token: an access token this agent holds for them"
        )
    subject = await read_subject(
        ctx, store, form.require("login_hint_token"), ACCESS_TOKEN_TYPE, now
    )
    if (
        subject.kind != DELEGATION
        or subject.holder != client.client_id
        or subject.chain.current_actor != client.client_id
        or subject.jkt is None
        or subject.jti is None
    ):
        raise InvalidRequestError(
            "login_hint_token must be a key-bound token this agent holds, acting for a person"
        )
    asked_scopes = [s for s in scopes if s != "openid"]
    beyond = [s for s in asked_scopes if subject.scopes is not None and s not in subject.scopes]
    if beyond:
        raise InvalidScopeError("scope beyond the login_hint_token's: " + " ".join(beyond))
    details = await _decided_details(ctx, store, subject, form.get("authorization_details"))
    message = form.get("binding_message")
    if message is not None and (len(message) > MAX_BINDING_MESSAGE or not message.isprintable()):
        raise InvalidBindingMessageError(
            f"binding_message must be printable, at most {MAX_BINDING_MESSAGE} characters"
        )
    lifetime = _expiry(form.get("requested_expiry"), settings.request_lifetime)
    auth_req_id = approvals.new_auth_req_id()
    request = approvals.ApprovalRequest(
        id=secrets.token_hex(8), client_id=client.client_id, sub=subject.chain.subject,
        actors=subject.chain.actors, parent_jti=subject.jti, jkt=subject.jkt,
        task=subject.task, scopes=tuple(asked_scopes), audience=tuple(subject.audience or ()),
        authorization_details=details, binding_message=message, created_at=now,
        expires_at=now + lifetime, interval=settings.interval, last_polled_at=None,
        status=approvals.PENDING,
    )  # fmt: skip
    await approvals.create(store.conn, auth_req_id, request)
    await audit.append(
        store.conn,
        audit.AuditEvent(
            event=APPROVAL_REQUESTED, client_id=client.client_id, subject=request.sub,
            actors=request.actors, task=request.task, parent_jti=request.parent_jti,
            details={"approval": request.id, "authorization_details": details,
                     "expires_at": request.expires_at},
        ),
        now,
    )  # fmt: skip
    return Asked(auth_req_id, lifetime, settings.interval, request)


def _expiry(value: str | None, most: int) -> int:
    """CIBA §7.1 ``requested_expiry``: a positive whole number of seconds, capped."""
    if value is None:
        return most
    if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
        raise InvalidRequestError("requested_expiry must be a positive whole number of seconds")
    return min(int(value), most)


async def _decided_details(
    ctx: ServerContext, store: SqlStore, subject: Any, text: str | None
) -> list[dict[str, Any]]:
    source = ctx.settings.policy
    if source is None:
        raise InvalidAuthorizationDetailsError(NO_TYPES)
    if text is None:
        raise InvalidRequestError("authorization_details are required: name what to approve")
    policy = source.policy
    try:
        entries = normalised(parse_param(text, policy), policy)
    except AttenuationError as exc:
        raise InvalidAuthorizationDetailsError(exc.description) from None
    person = await person_of(store, subject)
    agents = [profile_of(await find_client(ctx, store, a), a) for a in subject.chain.actors]
    refusal = approvable(policy, person, agents, entries, subject.task or "")
    if refusal is not None:
        raise InvalidAuthorizationDetailsError(refusal)
    return entries


def approvable(
    policy: Policy,
    person: Person,
    agents: Sequence[str],
    details: list[dict[str, Any]],
    task: str,
) -> str | None:
    """Why the policy would deny one of ``details`` to this chain even with the person's
    approval (its rule), or None: every action on every resource is allowed or supervised."""
    for entry in parse_details(details, policy.types):
        for action in sorted(entry.actions):
            for resource in entry.resources:
                decision = decide(
                    policy,
                    Question(
                        person=person.sub or agents[0], roles=person.roles, action=action,
                        resource=resource, chain=tuple(agents), task=task,
                        details=entry.to_json(policy.types[entry.type]), pattern=True,
                    ),
                )  # fmt: skip
                if decision.outcome == "deny":
                    return (
                        f"{entry.type} {action}: {decision.reason} "
                        f"(rule {decision.rule}, policy {decision.policy})"
                    )
    return None
