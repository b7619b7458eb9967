"""The approvals webhook (``approvals.webhook``), from the wire: a live server, an agent asking at
``/bc-authorize``, and a real receiver on a loopback port standing for the platform.

The receiver answers as each test scripts it (a status, or never) and hands every delivery to
a queue; tests wait on that queue or on the server's log line, never on a sleep.  The signature
is checked with the verification code docs/approvals.md shows, run as written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from delegation_support import (
    JWT,
    TOKEN_EXCHANGE,
    assertion,
    delegation_config,
    exchange,
    user_token,
)

from deputize.server.approvals.webhook import Webhook
from deputize.server.configuration.approvals import parse_webhook
from deputize.server.configuration.sections import ConfigError, Section
from deputize.server.settings import CIBA, Settings, parse_settings
from deputize.server.storage.approvals import PENDING, ApprovalRequest

from support import LiveServer, ServerFactory, watch_server_log

SECRET = "webhook-secret-0123456789abcdefghijklmnop"
SECRET_ENV = "DEPUTIZE_TEST_WEBHOOK_SECRET"
POLICY: dict[str, Any] = {
    "types": {"docs": {"actions": ["read", "delete"]}},
    "roles": {"admin": {"permissions": ["docs:read", "docs:delete"]}},
    "profiles": {"scheduler": {"allow": ["docs:*"]}},
    "tiers": {
        "rules": [{"name": "deletes-wait", "tier": "supervised", "permissions": ["docs:delete"]}]
    },
}
DELETE = [{"type": "docs", "actions": ["delete"], "locations": ["docs:/q3/report.pdf"]}]
DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def _docs_verify() -> Callable[..., bool]:
    """``verify`` from docs/approvals.md's webhook section, as a receiver would paste it."""
    section = (DOCS / "approvals.md").read_text().split("## Webhook", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/approvals.md", "exec"), namespace)  # noqa: S102 - our own docs
    verify: Callable[..., bool] = namespace["verify"]
    return verify


verify = _docs_verify()


# --- the platform's receiver --------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    headers: Message
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """An HTTP endpoint on 127.0.0.1 answering each POST with the next scripted status (None:
    never answer, until closed), then 200; every delivery goes to ``deliveries``."""

    def __init__(self, answers: list[int | None]) -> None:
        self.answers = deque(answers)
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.put(Delivery(self.headers, body))
                answer = receiver.answers.popleft() if receiver.answers else 200
                if answer is None:
                    receiver.release.wait()
                    return
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/deputize"

    def next(self) -> Delivery:
        return self.deliveries.get(timeout=30)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receivers() -> Iterator[Callable[[list[int | None]], Receiver]]:
    started: list[Receiver] = []

    def start(answers: list[int | None]) -> Receiver:
        started.append(Receiver(answers))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


# --- the server and the agent ---------------------------------------------------------------


def webhook_section(url: str, **keys: Any) -> Section:
    return Section({"url": url, "secret_env": SECRET_ENV, **keys}, "approvals.webhook")


def start(factory: ServerFactory, url: str, **keys: Any) -> LiveServer:
    """A live server with a policy and agent-a, telling ``url`` of each request; the secret
    comes through the real parser with an environment holding it."""
    grants = ["client_credentials", TOKEN_EXCHANGE, CIBA]
    config = delegation_config(agent_overrides={"agent-a": {"profile": "scheduler",
                                                            "grant_types": grants}})  # fmt: skip
    config["trusted_issuers"][0].update({"roles_claim": "groups", "roles": {"admins": ["admin"]}})
    config["policy"] = POLICY
    webhook = parse_webhook(webhook_section(url, **keys), {SECRET_ENV: SECRET})

    def configure(settings: Settings) -> Settings:
        return replace(settings, approvals=replace(settings.approvals, webhook=webhook))

    return factory.start(config, configure=configure)


def ask(live: LiveServer, *, timeout: float = 30, **params: str) -> httpx.Response:
    held = exchange(live, "agent-a", user_token(groups=["admins"]), subject_type=JWT,
                    scope="docs:read")  # fmt: skip
    assert held.status_code == 200, held.text
    form = {"scope": "openid docs:read", "login_hint_token": held.json()["access_token"],
            "authorization_details": json.dumps(DELETE), "binding_message": "Q3-42",
            **assertion(live, "agent-a"), **params}  # fmt: skip
    return live.client.post("/bc-authorize", data=form, timeout=timeout)


# --- deliveries ----------------------------------------------------------------------------


def test_a_new_request_is_announced_signed(
    server_factory: ServerFactory, receivers: Callable[[list[int | None]], Receiver]
) -> None:
    receiver = receivers([200])
    live = start(server_factory, receiver.url)
    asked = ask(live)
    assert asked.status_code == 200, asked.text
    delivery = receiver.next()
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["Deputize-Event"] == "approval_requested"
    body = delivery.json()
    assert body == {
        "event": "approval_requested",
        "id": body["id"],
        "sub": "alice",
        "actors": ["agent-a"],
        "client_id": "agent-a",
        "text": "agent-a, acting for alice, wants to delete docs:/q3/report.pdf",
        "authorization_details": body["authorization_details"],
        "binding_message": "Q3-42",
        "expires_at": body["expires_at"],
        "account_url": live.url + "/account",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", body["id"])
    assert [(d["actions"], d["locations"]) for d in body["authorization_details"]] == [
        (["delete"], ["docs:/q3/report.pdf"])
    ]
    assert body["expires_at"] - live.clock() == pytest.approx(600, abs=30)
    assert asked.json()["auth_req_id"].encode() not in delivery.body  # nothing to redeem
    header = delivery.headers["Deputize-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET.encode(), header, delivery.body)
    assert not verify(b"another-secret-0123456789abcdefghijklmn", header, delivery.body)
    assert not verify(SECRET.encode(), header, delivery.body + b" ")
    t = int(header.split(",")[0][2:])
    assert not verify(SECRET.encode(), header, delivery.body, now=t + 301), "too old"
    assert verify(SECRET.encode(), header, delivery.body, now=t + 299)


def test_a_refused_request_is_not_announced(
    server_factory: ServerFactory, receivers: Callable[[list[int | None]], Receiver]
) -> None:
    receiver = receivers([])
    live = start(server_factory, receiver.url)
    with watch_server_log(logging.DEBUG) as log:
        assert ask(live, binding_message="\x07").status_code == 400  # rolled back
        assert ask(live, binding_message="second").status_code == 200
        assert receiver.next().json()["binding_message"] == "second"
        assert log.wait_for("delivered")
    assert receiver.deliveries.empty()


@pytest.mark.parametrize(
    "status", [500, 503, 429], ids=lambda s: f"a {s} is tried again and delivered once"
)
def test_a_server_error_is_tried_again(
    server_factory: ServerFactory, receivers: Callable[[list[int | None]], Receiver], status: int
) -> None:
    receiver = receivers([status, 200])
    live = start(server_factory, receiver.url)
    with watch_server_log(logging.DEBUG) as log:
        assert ask(live).status_code == 200
        first, second = receiver.next(), receiver.next()
        assert log.wait_for("delivered")
    assert receiver.deliveries.empty(), "delivered once: no attempt after the 200"
    assert first.body == second.body
    assert verify(SECRET.encode(), second.headers["Deputize-Signature"], second.body)


@pytest.mark.parametrize("status", [400, 404, 302], ids=lambda s: f"a {s} is not tried again")
def test_a_client_error_is_final(
    server_factory: ServerFactory, receivers: Callable[[list[int | None]], Receiver], status: int
) -> None:
    receiver = receivers([status, 200])
    live = start(server_factory, receiver.url)
    with watch_server_log(logging.WARNING) as log:
        assert ask(live).status_code == 200
        receiver.next()
        assert log.wait_for(f"not delivered after 1 attempt(s): HTTP {status}")
    assert receiver.deliveries.empty()


def test_an_unreachable_platform_is_tried_each_time_then_logged_without_secrets(
    server_factory: ServerFactory,
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks/a-path-secret"
        live = start(server_factory, url, attempts=2)
        with watch_server_log(logging.WARNING) as log:
            assert ask(live).status_code == 200
            assert log.wait_for("not delivered after 2 attempt(s): ConnectError")
    said = " ".join(record.getMessage() for record in log.records)
    assert SECRET not in said and "a-path-secret" not in said and "eyJ" not in said


def test_a_platform_that_never_answers_does_not_hold_up_the_agent(
    server_factory: ServerFactory, receivers: Callable[[list[int | None]], Receiver]
) -> None:
    """The receiver holds the delivery open for as long as the test lasts (30 s times 3 attempts
    allowed); the agent's answer still comes, well within 5 s."""
    receiver = receivers([None])
    live = start(server_factory, receiver.url, timeout=30, attempts=3)
    asked = ask(live, timeout=5)
    assert asked.status_code == 200, asked.text
    assert receiver.next().json()["binding_message"] == "Q3-42"  # held, still unanswered
    assert not receiver.release.is_set()


def test_deliveries_beyond_the_bound_are_dropped_and_logged() -> None:
    settings = parse_webhook(webhook_section("http://127.0.0.1:9/hook"), {SECRET_ENV: SECRET})
    assert settings is not None
    request = ApprovalRequest(
        id="0123456789abcdef", client_id="agent-a", sub="alice", actors=("agent-a",),
        parent_jti="j", jkt="k", task=None, scopes=(), audience=(),
        authorization_details=DELETE, binding_message=None, created_at=0, expires_at=600,
        interval=5, last_polled_at=None, status=PENDING,
    )  # fmt: skip

    async def run() -> None:
        hook = Webhook(settings, account_url="http://x/account", clock=lambda: 0, max_in_flight=1)
        hook.announce(request)
        hook.announce(request)
        await hook.aclose()  # cancels the first, still in flight

    with watch_server_log(logging.WARNING) as log:
        asyncio.run(run())
    assert [r.getMessage() for r in log.records] == [
        "approval webhook: 1 deliveries in flight; approval 0123456789abcdef not announced"
    ]


# --- configuration -------------------------------------------------------------------------


def _settings(webhook: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    config = {"issuer": "https://auth.example.com", "approvals": {"webhook": webhook}}
    return parse_settings(config, env={SECRET_ENV: SECRET} if env is None else env)


@pytest.mark.parametrize(
    ("webhook", "env", "message"),
    [
        ({"url": "http://platform.example.com/h", "secret_env": SECRET_ENV}, None,
         "approvals.webhook.url: must use https"),
        ({"url": "ftp://platform.example.com/h", "secret_env": SECRET_ENV}, None,
         "approvals.webhook.url: expected an http\\(s\\) URL"),
        ({"url": "https://platform.example.com/h"}, None, "approvals.webhook.secret_env: required"),
        ({"url": "https://platform.example.com/h", "secret_env": SECRET_ENV}, {},
         f"approvals.webhook.secret_env: the variable {SECRET_ENV} is not set"),
        ({"url": "https://platform.example.com/h", "secret_env": SECRET_ENV},
         {SECRET_ENV: "short"}, "approvals.webhook.secret_env: .* at least 32 characters"),
        ({"secret_env": SECRET_ENV}, None, "approvals.webhook.url: required"),
        ({"url": "https://p.example.com/h", "secret_env": SECRET_ENV, "timeout": 60}, None,
         "approvals.webhook.timeout: expected a number of seconds from 1 to 30"),
        ({"url": "https://p.example.com/h", "secret_env": SECRET_ENV, "attempts": 0}, None,
         "approvals.webhook.attempts: expected a whole number from 1 to 10"),
        ({"url": "https://p.example.com/h", "secret_env": SECRET_ENV, "retries": 2}, None,
         "approvals.webhook.retries: unknown key"),
    ],
    ids=[
        "plain http to another host is refused", "a scheme other than http(s) is refused",
        "a url needs secret_env", "secret_env must name a set variable",
        "the secret must be long", "secret_env without url is refused", "timeout is bounded",
        "attempts are bounded", "an unknown key is refused",
    ],
)  # fmt: skip
def test_configuration_errors_name_the_key(
    webhook: dict[str, Any], env: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(webhook, env)


def test_configuration_defaults_and_loopback() -> None:
    assert parse_settings({"issuer": "https://auth.example.com"}, env={}).approvals.webhook is None
    hook = _settings({"url": "http://127.0.0.1:8080/h", "secret_env": SECRET_ENV}).approvals.webhook
    assert hook is not None
    assert (hook.timeout, hook.attempts, hook.secret) == (3.0, 3, SECRET.encode())
    assert SECRET not in repr(hook), "the key never reaches a log through repr"
    hook = _settings({"url": "https://p.example.com/h?k=1", "secret_env": SECRET_ENV,
                      "timeout": 1.5, "attempts": 10}).approvals.webhook  # fmt: skip
    assert hook is not None and (hook.timeout, hook.attempts) == (1.5, 10)
