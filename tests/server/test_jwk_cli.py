"""``deputize jwk generate``: an agent's key pair, the private half kept private."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from deputize.agent import load_key
from deputize.keys import KeySet, thumbprint
from deputize.server import cli
from deputize.server.cli.jwk import ALGORITHMS


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: f"an {a} pair works")
def test_generate_writes_a_private_pem_and_its_public_jwks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str
) -> None:
    private, public = tmp_path / "agent.pem", tmp_path / "agent.jwks.json"
    assert cli.main(["jwk", "generate", "--private", str(private), "--public", str(public),
                     "--alg", alg]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert stat.S_IMODE(private.stat().st_mode) == 0o600, "only its owner may read the key"
    jwks = json.loads(public.read_text())
    (jwk,) = jwks["keys"]
    assert "d" not in jwk and "p" not in jwk, "no private member in the public set"
    assert jwk["alg"] == alg and jwk["kid"] == thumbprint(jwk)
    assert f"Thumbprint (RFC 7638, also the kid): {jwk['kid']}" in out
    key = load_key(private)  # what the agent SDK reads
    assert key.kid == jwk["kid"] and key.alg == alg
    KeySet.from_jwks(jwks)  # a set Deputize accepts


@pytest.mark.parametrize(
    "existing",
    ["private", "public"],
    ids=["an existing private key is never overwritten", "an existing JWKS is never overwritten"],
)
def test_generate_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: str
) -> None:
    paths = {"private": tmp_path / "k.pem", "public": tmp_path / "k.json"}
    paths[existing].write_text("keep me")
    argv = ["jwk", "generate", "--private", str(paths["private"]), "--public", str(paths["public"])]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; pass --force" in err
    assert paths[existing].read_text() == "keep me"
    assert [p for p in paths.values() if p.exists()] == [paths[existing]], "nothing half-written"
    assert cli.main([*argv, "--force"]) == 0
    assert paths[existing].read_text() != "keep me"


@pytest.mark.parametrize(
    ("private", "public", "message"),
    [
        ("k.pem", "k.pem", "must name two different files"),
        ("missing/k.pem", "k.json", "cannot write"),
    ],
    ids=["one file for both halves is refused", "a missing folder is one line, not a traceback"],
)
def test_generate_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: str, public: str, message: str
) -> None:
    argv = ["jwk", "generate", "--private", str(tmp_path / private),
            "--public", str(tmp_path / public)]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("deputize: ") and message in err and err.count("\n") == 1
