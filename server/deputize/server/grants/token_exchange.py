"""RFC 8693 token exchange: delegation, never impersonation, one attenuated key-bound hop at a time.

The contract this enforces is ``docs/delegation.md``.  In short, for each exchange:

1. Whoever presents a sender-constrained subject token proves its key: the request's DPoP
   proof must be signed by the key in the token's ``cnf.jkt``; its ``ath``, if any, must be
   that token's hash (required only with ``dpop.require_subject_token_ath``).
2. The new token is bound to the key of the party that will present it: the requester's proof
   key, or the actor's key when the requester delegates to an ``actor_token`` in one call.
3. ``audience`` naming a registered client makes a hand-off token for that client instead:
   short-lived, single-use, redeemable only by that client with its own key.
4. A person's own token (unbound from an identity provider, or from sign-in here) starts a
   chain only for agents the person authorised (``delegation/who_may_act.py``).

Scope, audience, lifetime and depth only ever shrink (``deputize.keys.chain``).
No refresh token is issued: an agent re-exchanges from its parent, so revoking the parent
stops the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from deputize.keys import DPoPProof, JoseError
from deputize.keys.chain import (
    AttenuationError,
    Chain,
    attenuate_audience,
    attenuate_expiry,
    attenuate_scopes,
)
from deputize.keys.compare import same_text
from deputize.server.clients.auth import find_client
from deputize.server.delegation.permissions import allow, person_of, profile_of
from deputize.server.delegation.signin_details import NO_TYPES
from deputize.server.delegation.who_may_act import authorise
from deputize.server.errors import (
    InvalidAuthorizationDetailsError,
    InvalidDPoPProofError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
)
from deputize.server.grants import TokenRequest
from deputize.server.settings import TOKEN_EXCHANGE, ClientConfig, Settings
from deputize.server.storage.tokens import DELEGATION, HANDOFF, USER
from deputize.server.tokens.minting import mint_access_token
from deputize.server.tokens.scopes import forbidden_for, parse_scope
from deputize.server.tokens.subject_tokens import (
    ACCESS_TOKEN_TYPE,
    EXTERNAL,
    JWT_TYPE,
    SubjectToken,
    read_actor,
    read_subject,
)

_MAX_TASK = 128
# RFC 8693 §2.2.2: "invalid_request" when "either the subject_token or actor_token are invalid
# for any reason, or are unacceptable based on policy"; "invalid_target" for an audience or
# resource the server will not issue a token for; RFC 6749 §5.2 "invalid_scope" for scope.
# One code per reason: the table is in docs/endpoints.md.
_ERRORS: Mapping[str, type[OAuthError]] = {
    "invalid_scope": InvalidScopeError,
    "invalid_target": InvalidTargetError,
}


def _refuse(exc: AttenuationError) -> OAuthError:
    return _ERRORS.get(exc.error, InvalidRequestError)(exc.description)


class TokenExchangeGrant:
    grant_type: ClassVar[str] = TOKEN_EXCHANGE
    repeatable: ClassVar[frozenset[str]] = frozenset({"resource", "audience"})
    batched: ClassVar[bool] = True

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]:
        try:
            return await self._exchange(request)
        except AttenuationError as exc:
            raise _refuse(exc) from None
        except JoseError as exc:
            raise InvalidRequestError(exc.description) from None

    async def _exchange(self, request: TokenRequest) -> Mapping[str, Any]:
        ctx, store, form, client, now = (
            request.ctx, request.store, request.form, request.client, request.now
        )  # fmt: skip
        settings = ctx.settings
        proof = request.proof
        if proof is None:
            raise InvalidRequestError("token exchange needs a DPoP proof: every hop is key-bound")
        if form.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE, JWT_TYPE):
            raise InvalidRequestError("only access tokens can be requested")
        subject_token = form.require("subject_token")
        subject = await read_subject(
            ctx, store, subject_token, form.require("subject_token_type"), now
        )
        request.refusal.subject = subject.chain.subject
        request.refusal.actors = subject.chain.actors
        request.refusal.task = subject.task

        # Rule 1: a bound subject token is presented by its key holder (RFC 9449 §6.1: the
        # token is bound to the key its cnf.jkt names).
        if subject.jkt is not None:
            _check_holder_proof(proof, subject.jkt, subject_token, settings)

        targets = form.get_all("audience") + form.get_all("resource")
        recipients = [t for t in targets if await _is_agent(request, t)]
        resources = [t for t in targets if t not in recipients]
        actor_token = form.get("actor_token")
        if form.get("actor_token_type") is not None and actor_token is None:
            raise InvalidRequestError("actor_token_type without actor_token")
        if recipients and (len(recipients) > 1 or actor_token is not None):
            raise InvalidRequestError("hand off to exactly one client, without an actor_token")

        chain = subject.chain
        holder: ClientConfig = client
        jkt = proof.jkt
        caps: list[Sequence[str] | None] = []
        if subject.kind == HANDOFF:
            # Rule 3, redemption: only the named client, once, with its own key.
            if subject.holder != client.client_id or recipients or actor_token is not None:
                raise InvalidRequestError("this hand-off token is for another client")
            assert subject.jti is not None
            if not await store.redeem(subject.jti, now):
                raise InvalidRequestError("this hand-off token has already been used")
            chain = self._extend(chain, client, request)
            if not subject.chain.actors:  # a person's own token handed on: rule 4
                caps.append(await authorise(store, settings, subject, client.client_id, now))
        elif subject.kind in (DELEGATION, USER):
            if subject.holder != client.client_id:
                raise InvalidRequestError("only the holder of a delegated token may exchange it")
        else:  # a person's token from a trusted issuer: the requester starts acting for them
            chain = self._extend(chain, client, request)
            if subject.jkt is None:
                caps.append(await authorise(store, settings, subject, client.client_id, now))
        if actor_token is not None:
            # Rule 2: delegate in one call to the actor whose own bound token is presented.
            actor = await read_actor(ctx, store, actor_token, form.get("actor_token_type"), now)
            actor_client = await _client(request, actor.client_id)
            chain = self._extend(chain, actor_client, request)
            if (subject.kind == EXTERNAL and subject.jkt is None) or (
                subject.kind != EXTERNAL and not subject.chain.actors
            ):
                caps.append(await authorise(store, settings, subject, actor.client_id, now))
            holder, jkt = actor_client, actor.jkt
        recipient = await _client(request, recipients[0]) if recipients else None
        if recipient is not None:
            # The recipient must be able to take the next hop (no cycle, depth left): check now.
            self._extend(chain, recipient, request)
            if not chain.actors:  # a person's own token handed to an agent: rule 4 now
                caps.append(await authorise(store, settings, subject, recipient.client_id, now))

        scopes = self._scopes(request, subject, holder, recipient, caps)
        audience = self._audience(subject, holder, recipient, resources)
        lifetime = settings.handoff_lifetime if recipient else settings.access_token_lifetime
        ceiling = (recipient or holder).max_token_lifetime
        exp = attenuate_expiry(subject.exp, now=now, lifetime=lifetime, ceiling=ceiling)
        task = self._task(subject, form.get("task"))
        new_chain = chain.extend(recipient.client_id, max_depth=16) if recipient else chain
        scopes, carried, policy = await _apply_policy(request, subject, new_chain, scopes, task)
        # Revoking any token above the new one must reach it (see hold_lineage).
        if subject.jti is not None and not await store.hold_lineage(subject.jti):
            raise InvalidRequestError(
                "the subject token, or a token it was delegated from, is revoked"
            )

        if recipient is not None:
            minted = await mint_access_token(
                store, ctx.keyring, issuer=settings.issuer, chain=chain, client_id=client.client_id,
                audience=[recipient.client_id], scopes=scopes, now=now, expires_at=exp, jkt=None,
                kind=HANDOFF, parent_jti=subject.jti, task=task, ledger_client=recipient.client_id,
                extra_claims={"resources": audience, **carried}, policy=policy,
            )  # fmt: skip
            token_type = "N_A"  # RFC 8693 §2.2.1: not usable at a resource server
        else:
            minted = await mint_access_token(
                store, ctx.keyring, issuer=settings.issuer, chain=chain, client_id=holder.client_id,
                audience=audience, scopes=scopes, now=now, expires_at=exp, jkt=jkt,
                kind=DELEGATION, parent_jti=subject.jti, task=task, status=ctx.status_allocator,
                extra_claims=carried, policy=policy,
            )  # fmt: skip
            token_type = "DPoP"
        response: dict[str, Any] = {
            "access_token": minted.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,  # RFC 8693 §2.2.1
            "token_type": token_type,
            "expires_in": exp - now,
        }
        if scopes:
            response["scope"] = " ".join(scopes)
        if "authorization_details" in carried:  # RFC 9396 §7: as granted to this token
            response["authorization_details"] = carried["authorization_details"]
        return response

    @staticmethod
    def _extend(chain: Chain, client: ClientConfig, request: TokenRequest) -> Chain:
        settings = request.ctx.settings
        depth = settings.delegation_max_depth
        if client.max_delegation_depth is not None:
            depth = min(depth, client.max_delegation_depth)
        return chain.extend(client.client_id, max_depth=depth)

    @staticmethod
    def _scopes(
        request: TokenRequest,
        subject: SubjectToken,
        holder: ClientConfig,
        recipient: ClientConfig | None,
        caps: list[Sequence[str] | None],
    ) -> list[str]:
        settings = request.ctx.settings
        allowed = set(holder.scopes)
        if recipient is not None:
            allowed &= set(recipient.scopes)
        forbidden = forbidden_for(holder, settings)
        if recipient is not None:
            forbidden |= forbidden_for(recipient, settings)
        parent = subject.scopes if subject.scopes is not None else list(holder.scopes)
        for cap in caps:
            if cap is not None:  # a configured grant's limit on what the agent may hold
                parent = [s for s in parent if s in cap]
        requested = parse_scope(request.form.get("scope"))
        return attenuate_scopes(parent, requested, allowed=allowed, forbidden=forbidden)

    @staticmethod
    def _audience(
        subject: SubjectToken,
        holder: ClientConfig,
        recipient: ClientConfig | None,
        requested: list[str],
    ) -> list[str]:
        parent = subject.audience if subject.audience is not None else list(holder.audiences)
        for party in (holder, recipient):
            if party is not None and party.audiences:
                parent = [a for a in parent if a in party.audiences]
        audience = attenuate_audience(parent, requested)
        if not audience:
            raise InvalidTargetError("no audience is left that this client may receive")
        return audience

    @staticmethod
    def _task(subject: SubjectToken, requested: str | None) -> str | None:
        """The task flows down the chain; it can be named once, at the first hop that has none."""
        if requested is None:
            return subject.task
        if not requested.isprintable() or len(requested) > _MAX_TASK:
            raise InvalidRequestError("task must be printable and at most 128 characters")
        if subject.task is not None and requested != subject.task:
            raise InvalidRequestError("the task is fixed by the parent token")
        return requested


def _check_holder_proof(proof: DPoPProof, jkt: str, subject_token: str, settings: Settings) -> None:
    """Rule 1: the proof of an exchange of a key-bound subject token is signed by its key.

    RFC 9449 §4.2: ``ath`` "MUST" be in a proof "used in conjunction with the presentation of
    an access token in protected resource access"; at the token endpoint the token travels in
    the body and standard clients add no ``ath``.  What proves possession is the key: the
    proof's must be the one ``cnf.jkt`` names (§6.1), so ``ath`` is checked when present and
    required only with ``dpop.require_subject_token_ath`` (decision 0010).
    """
    if not same_text(proof.jkt, jkt):
        raise InvalidDPoPProofError("the DPoP proof must be signed by the subject token's key")
    if proof.ath is not None:
        # §4.3: a proof that names an access token by its hash must name this one.
        if not proof.covers(subject_token):
            raise InvalidDPoPProofError("the DPoP proof's ath is not the subject token's hash")
    elif settings.dpop_require_subject_token_ath:
        raise InvalidDPoPProofError(
            "the DPoP proof must carry ath, the subject token's hash "
            "(dpop.require_subject_token_ath)"
        )


async def _is_agent(request: TokenRequest, value: str) -> bool:
    """Whether an ``audience`` value names a registered agent (a hand-off) or a resource.

    Values recently found to name no client at all are not looked up again for a few seconds:
    at worst, a client registered in that window is taken for a resource URI, which only
    narrows the new token's audience to that value — it gains no one anything.
    """
    ctx = request.ctx
    if value not in ctx.static_clients and ctx.non_clients.seen(value, request.now):
        return False
    client = await find_client(ctx, request.store, value)
    if client is None:
        ctx.non_clients.add(value, request.now)
    return client is not None and client.agent


async def _apply_policy(
    request: TokenRequest,
    subject: SubjectToken,
    chain: Chain,
    scopes: list[str],
    task: str | None,
) -> tuple[list[str], dict[str, Any], str | None]:
    """Scopes, and the claims to carry (``authorization_details``, ``roles``), that the
    delegation policy lets the chain's newest agent hold (``delegation/permissions.py``).
    Without a policy the parent's details carry over unchanged, and asking for details is
    refused (no type is declared)."""
    source = request.ctx.settings.policy
    form = request.form
    if source is None:
        if form.get("authorization_details") is not None:
            raise InvalidAuthorizationDetailsError(NO_TYPES)
        carried = {} if subject.details is None else {"authorization_details": subject.details}
        return scopes, carried, None
    profiles = [await _profile(request, actor) for actor in chain.actors]
    person = await person_of(request.store, subject)
    allowed = allow(
        source.policy, person, profiles, scopes=scopes,
        explicit_scopes=form.get("scope") is not None,
        requested_details=form.get("authorization_details"), parent_details=subject.details,
        task=task,
    )  # fmt: skip
    claims: dict[str, Any] = {"roles": list(allowed.roles or ())}
    if allowed.details is not None:
        claims["authorization_details"] = allowed.details
    return allowed.scopes, claims, allowed.policy


async def _profile(request: TokenRequest, client_id: str) -> str:
    """The policy profile an agent answers to (``clients[].profile``, else its client_id)."""
    client = await find_client(request.ctx, request.store, client_id)
    return profile_of(client, client_id)


async def _client(request: TokenRequest, client_id: str) -> ClientConfig:
    client = await find_client(request.ctx, request.store, client_id)
    if client is None:
        raise InvalidRequestError(f"{client_id!r} is not a registered client")
    return client
