"""``POST /decide``: one decision of the delegation policy for a gateway or a resource server.

The caller authenticates as a client allowed to ask (``clients[].can_decide``) and sends, as
a form: ``token`` (an access token Deputize issued) or ``claims`` (a JSON object of a token the
caller verified itself), ``action``, ``resource`` and optionally ``details`` (a JSON object the
conditions may read).  The answer is ``{"decision": "allow"|"deny"|"supervised", "tier",
"rule", "reason", "policy"}`` — the same function as ``deputize policy check`` and
``Verifier.decide`` (``deputize.keys.policy.decide_for_token``).  A token Deputize no longer
vouches for (expired, revoked, not ours) is a ``deny`` with the rule ``token``.  Every decision
is audited with its rule and the policy's hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys._json import loads
from deputize.keys.policy import AUTONOMOUS, Decision, decide_for_token
from deputize.server.clients.auth import authenticate_client, find_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, request_transaction
from deputize.server.errors import InvalidRequestError, UnauthorizedClientError
from deputize.server.http.form import read_form
from deputize.server.http.responses import json_response
from deputize.server.storage import audit, tokens
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.own_tokens import verify_own_token

DECISION: Final = "decision"
_MAX_FIELD = 1024


async def decide_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, max_bytes=ctx.settings.max_body_bytes)
    now = int(ctx.clock())
    async with request_transaction(ctx.db, Refusal("decide"), now) as conn:
        store = SqlStore(conn)
        client = await authenticate_client(
            ctx, store, request.headers, form, endpoint=ctx.settings.endpoint("/decide")
        )
        if not client.can_decide:
            raise UnauthorizedClientError("this client may not ask for decisions (can_decide)")
        source = ctx.settings.policy
        if source is None:
            raise InvalidRequestError("no delegation policy is configured")
        action, resource = _field(form.require("action"), "action"), form.require("resource")
        _field(resource, "resource")
        details = _json_object(form.get("details"), "details")
        claims = await _claims(ctx, conn, form.get("token"), form.get("claims"), now)
        if claims is None:
            reason = "the token is not active"
            decision = Decision("deny", AUTONOMOUS, "token", reason, source.policy.hash)
        else:
            profiles = await _profiles(ctx, store, claims)
            decision = decide_for_token(
                source.policy, claims, action, resource, profile_of=profiles.get,
                details=details, now=datetime.fromtimestamp(now, UTC),
            )  # fmt: skip
        await store.audit(_event(client.client_id, claims, action, resource, decision), now)
    return json_response(decision.to_json())


def _field(value: str, name: str) -> str:
    if not value or len(value) > _MAX_FIELD or not value.isprintable():
        raise InvalidRequestError(f"{name} must be printable and at most {_MAX_FIELD} characters")
    return value


def _json_object(text: str | None, name: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = loads(text)
    except ValueError:
        raise InvalidRequestError(f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{name} must be a JSON object")
    return value


async def _claims(
    ctx: ServerContext, conn: Any, token: str | None, claims: str | None, now: int
) -> Mapping[str, Any] | None:
    """The claims to decide for: a live token of ours, or the caller's verified claims."""
    if (token is None) == (claims is None):
        raise InvalidRequestError("send exactly one of token and claims")
    if claims is not None:
        value = _json_object(claims, "claims")
        assert value is not None
        return value
    assert token is not None
    verified = verify_own_token(ctx, token, now=now)
    if verified is None:
        return None
    record = await tokens.get(conn, verified["jti"])
    if record is None or record.revoked_at is not None or record.redeemed_at is not None:
        return None
    return verified


async def _profiles(ctx: ServerContext, store: SqlStore, claims: Mapping[str, Any]) -> Any:
    """client_id → profile for every client the claims name (``clients[].profile``)."""
    names: dict[str, str] = {}
    act: Any = claims.get("act")
    ids = [claims.get("client_id"), claims.get("sub")]
    for _ in range(16):  # HARD_MAX_DEPTH: parse_chain refuses deeper chains anyway
        if not isinstance(act, Mapping):
            break
        ids.append(act.get("sub"))
        act = act.get("act")
    for client_id in ids:
        if isinstance(client_id, str) and client_id not in names:
            client = await find_client(ctx, store, client_id)
            names[client_id] = (
                (client.profile or client.client_id) if client is not None else client_id
            )
    return names


def _event(
    asker: str,
    claims: Mapping[str, Any] | None,
    action: str,
    resource: str,
    decision: Decision,
) -> audit.AuditEvent:
    subject = claims.get("sub") if claims is not None else None
    # Claims a caller sent are only as tidy as it made them: keep what fits the audit columns.
    shown = subject if isinstance(subject, str) and 0 < len(subject) <= 255 else None
    if shown is not None and not shown.isprintable():
        shown = None
    return audit.AuditEvent(
        event=DECISION,
        client_id=asker,
        subject=shown,
        reason=f"{decision.outcome}: {decision.rule}",
        details={
            "endpoint": "decide",
            "action": action,  # both printable and bounded (_field)
            "resource": resource,
            "tier": decision.tier,
            "rule": decision.rule,
            "policy": decision.policy,
        },
    )
