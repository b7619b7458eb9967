"""The whole story, as separate processes over HTTP, in one command:

    .venv/bin/python -m examples.demo

1. An example identity provider signs alice in (a token for her).
2. Deputize (``deputize serve``) trusts that provider and decides with the delegation policy
   of ``examples/policy/unified-auth.yaml`` (docs/policy.md): alice's ``admins`` group makes
   her an admin.  ``scheduling-agent`` exchanges alice's token to act for her on task
   ``quarterly-report`` (read and write documents); deleting waits for a person (supervised)
   and anything about users is forbidden to agents, so both are refused.
3. It hands a read-only piece to ``analysis-agent``, which redeems it with its own key, reads
   a document from the documents API and is refused a write; the policy refuses handing it
   write access at all.
4. ``deputize revoke --task quarterly-report``: the documents API — which verifies locally and
   learns of revocations from Deputize's status list — now refuses both agents.
5. The audit trail of the whole story is printed.

The documents API here re-reads the status list on every request (``--status-max-age 0``), so
the revocation shows at once; a production resource server honours the list's ``ttl``
(``status_list.ttl``, 60 s by default), bounding the delay at ``server_cache + ttl``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import yaml

from deputize.agent import (
    JWT_TYPE,
    TOKEN_EXCHANGE,
    AgentClient,
    OAuthError,
    ResourceError,
    raise_for_resource_error,
)
from deputize.keys import SigningKey

TASK = "quarterly-report"
DEPUTIZE = Path(sys.executable).with_name("deputize")
POLICY = Path(__file__).resolve().parent / "policy" / "unified-auth.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(argv: list[str], log: IO[str], *, expect: str) -> Iterator[str]:
    """Start a process; yield once it has printed its ``expect...`` line (its address)."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line.startswith(expect):
            raise SystemExit(f"{argv[0]} did not start: {line!r} (see {log.name})")
        yield line.strip()
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def deputize(*argv: str) -> str:
    result = subprocess.run(
        [str(DEPUTIZE), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"deputize {argv[0]} failed: {result.stderr}")
    return result.stdout


def show(who: str, what: str, response: httpx.Response) -> None:
    if response.status_code < 400:
        print(f"  {who} {what}: {response.status_code} {response.json()}")
        return
    try:
        raise_for_resource_error(response)
    except ResourceError as exc:
        print(f"  {who} {what}: {exc.status_code} {exc.error_code} ({exc.description})")


def refused(what: str, attempt: Callable[[], object]) -> None:
    try:
        attempt()
    except OAuthError as exc:
        print(f"  {what}: refused, {exc.error_code} ({exc.description})")
    else:
        raise SystemExit(f"{what}: the policy should have refused it")


def main() -> int:
    keys = {
        name: (SigningKey.generate("ES256"), SigningKey.generate("ES256"))
        for name in ("scheduling-agent", "analysis-agent")
    }  # (client authentication key, DPoP key) per agent
    with tempfile.TemporaryDirectory(prefix="deputize-demo-") as tmp:
        work = Path(tmp)
        log = (work / "servers.log").open("w")
        issuer = f"http://127.0.0.1:{free_port()}"
        python = sys.executable
        with (
            process([python, "-m", "examples.identity_provider"], log, expect="listening on")
            as idp_line,
            process(
                [python, "-m", "examples.documents_api", "--issuer", issuer,
                 "--status-max-age", "0"],
                log, expect="listening on",
            ) as docs_line,
        ):  # fmt: skip
            idp, docs = idp_line.split()[-1], docs_line.split()[-1]
            config = work / "deputize.yaml"
            config.write_text(yaml.safe_dump(_config(issuer, idp, docs, keys, work)))
            port = issuer.rsplit(":", 1)[1]
            serve = [str(DEPUTIZE), "serve", "--config", str(config), "--port", port]
            with process(serve, log, expect="Deputize listening"):
                _story(issuer, idp, docs, keys, config)
        log.close()
    return 0


def _config(
    issuer: str, idp: str, docs: str, keys: dict[str, tuple[SigningKey, SigningKey]], work: Path
) -> dict[str, object]:
    return {
        "issuer": issuer,
        "database": {"url": f"sqlite:///{work / 'deputize.db'}"},
        "trusted_issuers": [
            {
                "issuer": idp,
                "audience": "deputize",
                "jwks_uri": f"{idp}/jwks",
                "roles_claim": "groups",
                "roles": {"admins": ["admin"]},
            }
        ],
        "policy": str(POLICY),
        "delegation": {"grants": [{"subject": "alice", "agents": ["scheduling-agent"]}]},
        "status_list": {"ttl": 60, "server_cache": 0},
        "clients": [
            {
                "client_id": name,
                "agent": True,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [auth_key.public_jwk()]},
                "grant_types": ["client_credentials", TOKEN_EXCHANGE],
                "scopes": ["docs:read", "docs:write", "docs:delete", "users:read"],
                "audiences": [docs],
            }
            for name, (auth_key, _) in keys.items()
        ],
    }


def _story(
    issuer: str,
    idp: str,
    docs: str,
    keys: dict[str, tuple[SigningKey, SigningKey]],
    config: Path,
) -> None:
    document = f"{docs}/documents/1"
    print("1. alice signs in at the example identity provider")
    login = {"username": "alice", "groups": ["admins"]}
    alice = httpx.post(f"{idp}/login", json=login).json()["access_token"]

    scheduler = AgentClient(
        issuer, "scheduling-agent", client_key=keys["scheduling-agent"][0],
        dpop_key=keys["scheduling-agent"][1],
    )  # fmt: skip
    analyst = AgentClient(
        issuer, "analysis-agent", client_key=keys["analysis-agent"][0],
        dpop_key=keys["analysis-agent"][1],
    )  # fmt: skip
    with scheduler, analyst, httpx.Client() as http:
        print("2. scheduling-agent exchanges alice's token to act for her")
        t1 = scheduler.exchange(
            alice, subject_token_type=JWT_TYPE, scope="docs:read docs:write", resource=docs,
            task=TASK,
        )  # fmt: skip
        print(f"  scheduling-agent holds: sub={t1.claims['sub']} act={t1.claims['act']} "
              f"scope={' '.join(t1.scope)} task={t1.claims['task']}")  # fmt: skip
        show("scheduling-agent", "reads document 1", http.get(document, auth=scheduler.auth(t1)))
        for scope in ("docs:delete", "users:read"):
            refused(f"scheduling-agent asks for {scope}", functools.partial(
                scheduler.exchange, alice, subject_token_type=JWT_TYPE, scope=scope,
                resource=docs))  # fmt: skip

        print("3. scheduling-agent hands a read-only piece to analysis-agent")
        handoff = scheduler.hand_off(t1, to="analysis-agent", scope="docs:read")
        t2 = analyst.redeem(handoff)
        print(f"  analysis-agent holds: sub={t2.claims['sub']} act={t2.claims['act']} "
              f"scope={' '.join(t2.scope)}")  # fmt: skip
        show("analysis-agent", "reads document 1", http.get(document, auth=analyst.auth(t2)))
        show("analysis-agent", "writes document 1",
             http.put(document, content=b"edited", auth=analyst.auth(t2)))  # fmt: skip
        refused("scheduling-agent hands docs:write to analysis-agent",
                lambda: scheduler.hand_off(t1, to="analysis-agent", scope="docs:write"),
        )  # fmt: skip

        print(f"4. deputize revoke --task {TASK}")
        print("  " + deputize("revoke", "--config", str(config), "--task", TASK).strip())
        show("scheduling-agent", "reads document 1", http.get(document, auth=scheduler.auth(t1)))
        show("analysis-agent", "reads document 1", http.get(document, auth=analyst.auth(t2)))

    print("5. the audit trail")
    for line in deputize("audit", "--config", str(config)).strip().splitlines():
        print("  " + line)


if __name__ == "__main__":
    raise SystemExit(main())
