"""Stateless DPoP nonces: valid for their window and the ones either side, unforgeable, and a
nonce made for one use (label) never passes for another."""

from __future__ import annotations

from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.nonces import NonceSource

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def test_a_nonce_is_valid_for_its_window_and_the_neighbours() -> None:
    source = NonceSource(SECRET, lifetime=60)
    nonce = source.current(NOW)
    assert source.current(NOW + 59) == nonce  # NOW starts a window
    assert source.current(NOW + 60) != nonce
    for offset in (-60, 0, 60):
        assert source.is_valid(nonce, NOW + offset)
    for offset in (-120, 120, 10_000):
        assert not source.is_valid(nonce, NOW + offset)


def test_instances_sharing_the_secret_accept_each_other() -> None:
    assert NonceSource(SECRET, lifetime=60).is_valid(
        NonceSource(SECRET, lifetime=60).current(NOW), NOW
    )
    assert not NonceSource(b"x" * 32, lifetime=60).is_valid(
        NonceSource(SECRET, lifetime=60).current(NOW), NOW
    )


def test_labels_separate_uses() -> None:
    server = NonceSource(SECRET, lifetime=60, label=b"dpop-nonce")
    resource = NonceSource(SECRET, lifetime=60, label=b"rs-nonce")
    assert not resource.is_valid(server.current(NOW), NOW)
    assert not server.is_valid(resource.current(NOW), NOW)


def test_forged_and_malformed_nonces_fail() -> None:
    source = NonceSource(SECRET, lifetime=60)
    raw = bytearray(b64url_decode(source.current(NOW)))
    raw[-1] ^= 1
    assert not source.is_valid(b64url_encode(bytes(raw)), NOW)
    # A later window with the old MAC: the window number is authenticated too.
    raw = bytearray(b64url_decode(source.current(NOW)))
    raw[7] += 1
    assert not source.is_valid(b64url_encode(bytes(raw)), NOW)
    for junk in ("", "!!!", "A" * 31, b64url_encode(b"x" * 23), b64url_encode(b"x" * 25)):
        assert not source.is_valid(junk, NOW)
