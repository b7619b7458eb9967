"""Deputize agent SDK: get, exchange, hand off and use DPoP-bound tokens (httpx).

The SDK lands with the client-SDK issue; this package exists now so the namespace layout and the
layering rules are fixed and tested from the start.
"""
