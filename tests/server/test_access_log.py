"""The access log's query redaction (``deputize serve --access-log``): deny by default.

``tests/interop/test_serve_process.py`` checks the log of a real server; these pin the rule.
"""

from __future__ import annotations

import logging

import pytest

from deputize.server.http.access_log import RedactQuery, redact


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/jwks", "/jwks"),
        ("/jwks?", "/jwks?"),
        ("/logout?id_token_hint=eyJ.eyJ.sig", "/logout?id_token_hint=..."),
        ("/a?client_id=web&state=s&scope=openid", "/a?client_id=web&state=...&scope=openid"),
        ("/x?client%5Fid=secret", "/x?client%5Fid=..."),
        ("/x?flag&client_id=", "/x?flag&client_id="),
        ("/x?a=1=2&&b", "/x?a=...&&b"),
    ],
    ids=["no query", "an empty query", "an ID token", "harmless names shown, state hidden",
         "an encoded name is an unknown name", "no value, nothing to hide", "odd shapes"],
)  # fmt: skip
def test_query_values_are_hidden_unless_harmless(path: str, logged: str) -> None:
    assert redact(path) == logged


def test_the_filter_rewrites_uvicorns_access_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/userinfo?access_token=tok", "1.1", 401), None,
    )  # fmt: skip
    assert RedactQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /userinfo?access_token=... HTTP/1.1" 401'
