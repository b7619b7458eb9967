"""The pinned fetch over TLS: the connection goes to the address that was checked, while the
certificate is verified against the URL's host name (SNI), so a DNS answer that changes after
the check cannot redirect the fetch, and pinning never weakens certificate checks."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from document_publisher import Page, Publisher, document_publisher

from deputize.server.client_documents import ClientDocumentError
from deputize.server.client_documents.fetch import Fetched, fetch_document, new_http_client


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: list[str] = [],  # noqa: B006
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = _certificate("test CA", key, name, key, ca=True)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key


def _server_context(
    tmp: Path, authority: tuple[Path, ec.EllipticCurvePrivateKey], host: str
) -> ssl.SSLContext:
    ca_path, ca_key = authority
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(host, key, ca_cert.subject, ca_key, ca=False, names=[host])
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


@pytest.fixture
def publisher_for(
    tmp_path: Path,
    authority: tuple[Path, ec.EllipticCurvePrivateKey],
    request: pytest.FixtureRequest,
) -> Iterator[Publisher]:
    with document_publisher(_server_context(tmp_path, authority, request.param)) as publisher:
        yield publisher


def _fetch(url: str, ca: Path) -> Fetched:
    async def go() -> Fetched:
        http = new_http_client(ssl.create_default_context(cafile=str(ca)))
        try:
            return await fetch_document(
                http, url, max_bytes=5120, deadline=3, allow_http_loopback=False,
                allow_private=True,
            )  # fmt: skip
        finally:
            await http.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("publisher_for", ["localhost"], indirect=True)
def test_the_certificate_is_checked_against_the_name_while_the_ip_is_pinned(
    publisher_for: Publisher, authority: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    url = publisher_for.url("/client.json")
    body = json.dumps({"client_id": url}).encode()
    publisher_for.pages["/client.json"] = Page(body=body)
    fetched = _fetch(url, authority[0])
    assert fetched.body == body
    assert publisher_for.hosts == [url.split("/")[2]]  # Host: the name, not the address


@pytest.mark.parametrize("publisher_for", ["other.example"], indirect=True)
def test_a_certificate_for_another_name_is_refused(
    publisher_for: Publisher, authority: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    url = publisher_for.url("/client.json")
    publisher_for.pages["/client.json"] = Page(body=b"{}")
    with pytest.raises(ClientDocumentError, match="could not be fetched"):
        _fetch(url, authority[0])
    assert publisher_for.hits["/client.json"] == 0
