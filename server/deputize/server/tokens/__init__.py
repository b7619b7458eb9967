"""Tokens: reading the ones presented (subject, actor, our own), minting new ones, scope and
audience selection, DPoP state at the token endpoint, revocation and the status list."""
