"""The authorization endpoint (RFC 6749 §4.1, OAuth 2.1): sign-in, consent, and a code.

Checks, in order:
1. ``client_id`` names a client allowed the code grant, and ``redirect_uri`` is one of its
   registered URIs, compared as exact strings (RFC 9700 §4.1.3).  Until both hold, errors are
   shown on a page: nothing is ever redirected to an unregistered URI (RFC 6749 §4.1.2.1).
2. From then on errors go back to the client (with ``state`` and RFC 9207 ``iss``):
   ``response_type=code`` only; PKCE with S256 required (RFC 7636, RFC 9700 §2.1.1); scopes the
   client may have, plus ``openid profile email``; RFC 8707 ``resource`` among its audiences;
   ``dpop_jkt`` (RFC 9449 §10) well-formed; ``prompt`` (OpenID Connect Core §3.1.2.1);
   ``authorization_details`` (RFC 9396 §2) of the delegation policy's types.
   The same checks run on a pushed request at ``/par`` (RFC 9126 §2.1: :func:`start_request`
   and :func:`validate`); ``/authorize`` then takes only ``client_id`` and ``request_uri``
   (§4), and refuses any other request when PAR is required (§5).
3. A browser session, else the sign-in page (``prompt=none``: ``login_required``).  Then the
   ``authorization_details`` are decided for that person (their roles, and the agent's
   profile when the client is an agent): a refusal names the rule.
4. A live consent covering the scopes, details and agents, else the consent page
   (``prompt=none``: ``consent_required``; ``prompt=consent`` always asks).
5. A single-use code, stored as its hash, valid ``sign_in.code_lifetime`` seconds, bound to
   the client, redirect URI, PKCE challenge, nonce, DPoP key and consent.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from deputize.keys.errors import error_description
from deputize.server.accounts import actions as accounts
from deputize.server.client_documents import METADATA_DOCUMENT, ClientDocumentError
from deputize.server.clients.auth import find_client
from deputize.server.context import ServerContext
from deputize.server.delegation.signin_details import covered
from deputize.server.endpoints.authorize_details import decided_details, requested_details
from deputize.server.endpoints.pages import current_session, page, page_form, user_label
from deputize.server.errors import OAuthError
from deputize.server.http.form import Form
from deputize.server.http.web import Browser, PageError, redirect, render
from deputize.server.settings import AUTHORIZATION_CODE, ClientConfig
from deputize.server.storage import audit, codes, consents, pushed_requests, sessions
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.scope_words import OIDC_SCOPES, describe_all, describe_details
from deputize.server.tokens.scopes import parse_scope, select_audience

CONSENT_DENIED: Final = "consent_denied"
_B64_256: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # a base64url SHA-256 (PKCE S256, jkt)
_PROMPTS: Final = frozenset({"none", "login", "consent"})
#: Seconds a pushed request is held, under a new single-use request_uri, while the person signs
#: in or answers the consent page (the pushed lifetime is meant for a redirect, not for typing).
CONTINUATION_LIFETIME: Final = 600
#: Parameters carried through sign-in and the consent form.
FORWARDED: Final = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "nonce", "prompt", "dpop_jkt", "max_age", "resource",
    "authorization_details",
)  # fmt: skip


class RedirectError(Exception):
    """An error the client learns about at its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = error_description(description)


@dataclass(slots=True)
class AuthorizationRequest:
    client: ClientConfig
    redirect_uri: str
    state: str | None = None
    scopes: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    code_challenge: str = ""
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    dpop_jkt: str | None = None
    max_age: int | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    pushed: bool = False
    """Whether the request came through ``/par`` (RFC 9126), so stays in the back channel."""
    details: list[dict[str, Any]] | None = None
    """RFC 9396 entries asked for, normalised; once the person is known, as the policy
    allows them for that person (and the agent, if the client is one)."""


def _single(values: dict[str, list[str]], name: str) -> str | None:
    found = values.get(name)
    if not found:
        return None
    if len(found) > 1:
        raise RedirectError("invalid_request", f"parameter {name!r} is repeated")
    return found[0]


async def identify(
    ctx: ServerContext, conn: AsyncConnection, values: dict[str, list[str]]
) -> AuthorizationRequest:
    """Step 1: nothing is redirected until client and redirect URI are known to belong together."""
    for name in ("client_id", "redirect_uri"):
        if len(values.get(name, [])) > 1:
            raise PageError("Sign-in request refused", f"The app sent {name} more than once.")
    client_id = values.get("client_id", [None])[0]
    if client_id is None:
        raise PageError(
            "Sign-in request refused", "The app that sent you here did not say who it is."
        )
    try:
        client = await find_client(ctx, SqlStore(conn), client_id, documents=True)
    except ClientDocumentError as exc:  # an error page: its redirect URIs are unverified
        raise PageError(
            "Sign-in request refused",
            f"The app's client metadata document could not be used: {exc.reason}.",
        ) from None
    if client is None or AUTHORIZATION_CODE not in client.grant_types:
        raise PageError(
            "Sign-in request refused",
            "The app that sent you here is not registered to sign users in here.",
        )
    return start_request(client, values)


def start_request(client: ClientConfig, values: dict[str, list[str]]) -> AuthorizationRequest:
    """Step 1 for a known client (named at ``/authorize``, authenticated at ``/par``): the
    redirect URI must be one it registered, compared as exact strings."""
    redirect_uri = values.get("redirect_uri", [None])[0]
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        raise PageError(
            "Sign-in request refused",
            "The app asked to send you back to an address it has not registered.",
        )
    request = AuthorizationRequest(client=client, redirect_uri=redirect_uri)
    state = values.get("state", [])
    request.state = state[0] if len(state) == 1 else None
    request.params = [(n, v) for n in FORWARDED for v in values.get(n, [])]
    return request


def validate(
    ctx: ServerContext, request: AuthorizationRequest, values: dict[str, list[str]]
) -> None:
    """Step 2: the rest is the client's to hear about, at its redirect URI."""
    client = request.client
    if not request.pushed and (
        ctx.settings.require_pushed_authorization_requests
        or client.require_pushed_authorization_requests
    ):
        # RFC 9126 §5 / §6: this server or this client takes authorization requests only by PAR.
        raise RedirectError("invalid_request", "push the authorization request to /par first")
    _single(values, "state")
    if "request" in values:
        raise RedirectError("request_not_supported", "request objects are not supported")
    if "request_uri" in values:
        raise RedirectError("request_uri_not_supported", "request_uri is not supported")
    details = _single(values, "authorization_details")
    if details is not None:
        try:
            request.details = requested_details(ctx, details)
        except OAuthError as exc:
            raise RedirectError(exc.error, exc.description) from None
    response_type = _single(values, "response_type")
    if response_type is None:
        raise RedirectError("invalid_request", "missing required parameter 'response_type'")
    if response_type != "code":
        raise RedirectError("unsupported_response_type", "only response_type=code is supported")
    challenge = _single(values, "code_challenge")
    if challenge is None:
        raise RedirectError("invalid_request", "PKCE is required: send a code_challenge (S256)")
    if _single(values, "code_challenge_method") != "S256":
        raise RedirectError("invalid_request", "code_challenge_method must be S256")
    if not _B64_256.fullmatch(challenge):
        raise RedirectError("invalid_request", "code_challenge must be a base64url SHA-256")
    request.code_challenge = challenge
    try:
        requested = parse_scope(_single(values, "scope"))
    except OAuthError as exc:
        raise RedirectError("invalid_scope", exc.description) from None
    allowed = [*client.scopes, *OIDC_SCOPES]
    scopes = requested if requested is not None else list(client.scopes)
    refused = [s for s in scopes if s not in allowed]
    if client.agent:
        refused += [s for s in scopes if s in ctx.settings.forbidden_agent_scopes]
    if refused:
        raise RedirectError(
            "invalid_scope", "scope not allowed for this client: " + " ".join(refused)
        )
    request.scopes = scopes
    resources = values.get("resource", [])
    if resources:
        try:
            request.resources = select_audience(
                Form({"resource": resources}), client.audiences, ctx.settings.issuer
            )
        except OAuthError as exc:
            raise RedirectError("invalid_target", exc.description) from None
    nonce = _single(values, "nonce")
    if nonce is not None and (len(nonce) > 512 or not nonce.isprintable()):
        raise RedirectError("invalid_request", "nonce must be printable, at most 512 characters")
    request.nonce = nonce
    prompt = frozenset((_single(values, "prompt") or "").split())
    if prompt - _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise RedirectError("invalid_request", "prompt must be none, or login and/or consent")
    request.prompt = prompt
    jkt = _single(values, "dpop_jkt")
    if jkt is not None and not _B64_256.fullmatch(jkt):
        raise RedirectError("invalid_request", "dpop_jkt must be a JWK SHA-256 thumbprint")
    request.dpop_jkt = jkt
    max_age = _single(values, "max_age")
    if max_age is not None:
        # ASCII digits only: ``isdigit`` alone also passes "²", which ``int`` refuses.
        if not (max_age.isascii() and max_age.isdigit()) or len(max_age) > 9:
            raise RedirectError("invalid_request", "max_age must be a whole number of seconds")
        request.max_age = int(max_age)


def respond(settings_issuer: str, request: AuthorizationRequest, **params: str) -> str:
    """The redirect URI with the response parameters (RFC 6749 §4.1.2, RFC 9207 ``iss``)."""
    query = dict(params)
    if request.state is not None:
        query["state"] = request.state
    query["iss"] = settings_issuer
    separator = "&" if urlsplit(request.redirect_uri).query else "?"
    if request.redirect_uri.endswith("?"):
        separator = ""
    return request.redirect_uri + separator + urlencode(query)


async def agents_to_authorise(
    ctx: ServerContext, conn: AsyncConnection, client: ClientConfig
) -> list[ClientConfig]:
    """The agents this consent will let act for the user: the client itself if it is one,
    and every registered agent among its ``delegate_agents``."""
    found = [client] if client.agent else []
    for agent_id in client.delegate_agents:
        agent = await find_client(ctx, SqlStore(conn), agent_id)
        if agent is not None and agent.agent and agent not in found:
            found.append(agent)
    return found


def _covers(
    ctx: ServerContext, consent: consents.Consent | None, auth: AuthorizationRequest,
    agents: list[str],
) -> bool:  # fmt: skip
    source = ctx.settings.policy
    return (
        consent is not None
        and set(auth.scopes) <= set(consent.scopes)
        and set(agents) <= set(consent.agents)
        and covered(
            consent.authorization_details, auth.details, None if source is None else source.policy
        )
    )


async def _issue_code(
    ctx: ServerContext,
    conn: AsyncConnection,
    request: AuthorizationRequest,
    session: sessions.Session,
    consent: consents.Consent,
    now: int,
) -> str:
    code = secrets.token_urlsafe(32)
    await codes.store(
        conn,
        code,
        codes.Code(
            client_id=request.client.client_id,
            sub=session.sub,
            redirect_uri=request.redirect_uri,
            scopes=tuple(request.scopes),
            resources=tuple(request.resources),
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            dpop_jkt=request.dpop_jkt,
            auth_time=session.auth_time,
            consent_id=consent.id,
            expires_at=now + ctx.settings.code_lifetime,
            authorization_details=request.details,
        ),
    )
    return respond(ctx.settings.issuer, request, code=code)


async def _carried(
    conn: AsyncConnection, request: AuthorizationRequest, params: list[tuple[str, str]], now: int
) -> list[tuple[str, str]]:
    """What the sign-in page or the consent form sends back to ``/authorize``.  A pushed
    request stays out of the front channel (RFC 9126 §1): it is held again under a fresh
    single-use ``request_uri``, so every hop is PAR too (and passes a PAR requirement)."""
    if not request.pushed:
        return params
    request_uri = pushed_requests.new_request_uri()
    client_id = request.client.client_id
    await pushed_requests.store(
        conn, request_uri, client_id=client_id, params=params,
        expires_at=now + CONTINUATION_LIFETIME,
    )  # fmt: skip
    return [("client_id", client_id), ("request_uri", request_uri)]


async def _pushed_values(
    conn: AsyncConnection, values: dict[str, list[str]], now: int
) -> tuple[dict[str, list[str]], bool]:
    """RFC 9126 §4: with ``request_uri``, the request is the one the client pushed (any other
    parameter but ``client_id`` is ignored), once, before it expires, and only for the client
    that pushed it.  Otherwise there is no redirect URI to trust: the error is a page.  Any
    other ``request_uri`` (a request object by reference, RFC 9101) is not supported:
    :func:`validate` says so at the redirect URI."""
    if not any(v.startswith(pushed_requests.URN_PREFIX) for v in values.get("request_uri", [])):
        return values, False
    found = values["request_uri"]
    client_id = values.get("client_id", [])
    if len(found) > 1 or len(client_id) != 1:
        raise PageError(
            "Sign-in request refused", "The app must send one request_uri and its client_id."
        )
    pushed = await pushed_requests.take(conn, found[0], client_id[0], now)
    if pushed is None:  # invalid_request_uri (RFC 9101 §6.2)
        raise PageError(
            "Sign-in request expired",
            "This sign-in request has expired or was already used. Start again from the app.",
        )
    expanded: dict[str, list[str]] = {}
    for name, value in pushed:
        expanded.setdefault(name, []).append(value)
    return expanded, True


async def _sign_in_again(
    ctx: ServerContext, conn: AsyncConnection, request: AuthorizationRequest, now: int
) -> Response:
    params = [
        (name, " ".join(sorted(request.prompt - {"login"})) if name == "prompt" else value)
        for name, value in request.params
    ]
    params = [(n, v) for n, v in params if v]
    next_ = "authorize?" + urlencode(await _carried(conn, request, params, now))
    return redirect(ctx.settings.endpoint("/login") + "?" + urlencode({"next": next_}), status=302)


@page
async def authorize(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    now = int(ctx.clock())
    form: Form | None = None
    if request.method == "POST":
        form = await page_form(request, ctx, browser)
        items = [(n, v) for n in (*FORWARDED, "request_uri") for v in form.get_all(n)]
    else:
        items = list(request.query_params.multi_items())
    values: dict[str, list[str]] = {}
    for name, value in items:
        if "\x00" in name or "\x00" in value:
            raise PageError("Sign-in request refused", "The request holds invalid characters.")
        if value:  # RFC 6749 §3.1: parameters sent without a value are treated as omitted
            values.setdefault(name, []).append(value)
    if ctx.client_documents is not None:  # fetched before the transaction, never inside it
        ids = values.get("client_id", [])
        await ctx.client_documents.settle(ids[0] if ids else None, known=ctx.static_clients)
    async with ctx.db.begin() as conn:
        values, pushed = await _pushed_values(conn, values, now)
        auth = await identify(ctx, conn, values)
        auth.pushed = pushed
        try:
            validate(ctx, auth, values)
            return await _decide(request, ctx, browser, conn, auth, form, now)
        except RedirectError as exc:
            target = respond(
                ctx.settings.issuer, auth, error=exc.error, error_description=exc.description
            )
            return redirect(target, status=303 if form is not None else 302)


async def _decide(
    request: Request,
    ctx: ServerContext,
    browser: Browser,
    conn: AsyncConnection,
    auth: AuthorizationRequest,
    form: Form | None,
    now: int,
) -> Response:
    settings = ctx.settings
    client = auth.client
    found = await current_session(request, ctx, conn, now)
    stale = (
        found is not None and auth.max_age is not None and now - found[0].auth_time > auth.max_age
    )
    if found is None or "login" in auth.prompt or stale:
        if "none" in auth.prompt:
            raise RedirectError("login_required", "the user is not signed in")
        return await _sign_in_again(ctx, conn, auth, now)
    session, user = found
    if auth.details is not None:  # decided for this person before they are asked to allow it
        try:
            auth.details = await decided_details(ctx, conn, client, user.sub, auth.details, now)
        except OAuthError as exc:
            raise RedirectError(exc.error, exc.description) from None
    agents = await agents_to_authorise(ctx, conn, client)
    agent_ids = [a.client_id for a in agents]
    if form is not None:  # the consent page's answer
        if form.get("user") != user.sub:
            raise PageError(
                "Consent not recorded",
                "You signed in as someone else since this page was shown. "
                "Start again from the app.",
            )
        decision = form.get("decision")
        if decision == "deny":
            await audit.append(
                conn,
                audit.AuditEvent(
                    event=CONSENT_DENIED, client_id=client.client_id, subject=user.sub,
                    actors=agent_ids, details={"scope": " ".join(auth.scopes)},
                ),
                now,
            )  # fmt: skip
            raise RedirectError("access_denied", "the user denied the request")
        if decision != "allow":
            raise PageError("Consent not recorded", "Choose Allow or Deny.")
        consent = await consents.record(
            conn, sub=user.sub, client_id=client.client_id, scopes=auth.scopes,
            agents=agent_ids, now=now, lifetime=settings.consent_lifetime, details=auth.details,
        )  # fmt: skip
        await audit.append(
            conn,
            audit.AuditEvent(
                event=accounts.CONSENT_GRANTED, client_id=client.client_id, subject=user.sub,
                actors=agent_ids,
                details={"consent": consent.id, "scope": " ".join(consent.scopes)},
            ),
            now,
        )  # fmt: skip
        return redirect(await _issue_code(ctx, conn, auth, session, consent, now))
    existing = await consents.current(conn, user.sub, client.client_id, now)
    if (
        existing is not None
        and "consent" not in auth.prompt
        and _covers(ctx, existing, auth, agent_ids)
    ):
        return redirect(await _issue_code(ctx, conn, auth, session, existing, now), status=302)
    if "none" in auth.prompt:
        raise RedirectError("consent_required", "the user has not consented to this request")
    forbidden = set(settings.forbidden_agent_scopes)
    shown = [(n, v) for n, v in auth.params if not (n == "prompt" and v == "consent")]
    carried = await _carried(conn, auth, shown, now)
    return render(
        "consent.html",
        settings,
        browser=browser,
        client_name=client.name or client.client_id,
        client_id=client.client_id,
        # A metadata document's name is self-asserted: the host it came from is what is known.
        client_host=(
            urlsplit(client.client_id).hostname if client.source == METADATA_DOCUMENT else None
        ),
        client_is_agent=client.agent,
        user_label=user_label(user),
        user_sub=user.sub,
        scopes=describe_all(auth.scopes),
        details=describe_details(auth.details),
        resources=auth.resources,
        agents=[
            {
                "name": agent.name or agent.client_id,
                "client_id": agent.client_id,
                "scopes": describe_all(
                    [s for s in auth.scopes if s in agent.scopes and s not in forbidden]
                ),
            }
            for agent in agents
            if agent is not client  # an agent client is presented as itself, above
        ],
        expires_at=now + settings.consent_lifetime,
        redirect_host=urlsplit(auth.redirect_uri).netloc or auth.redirect_uri.split(":")[0],
        action=settings.endpoint("/authorize"),
        params=carried,
    )
