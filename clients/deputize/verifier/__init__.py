"""Deputize resource-server verifier: local checks of token, DPoP proof, chain and scopes.

The verifier lands with the client-SDK issue; this package exists now so the namespace layout
and the layering rules are fixed and tested from the start.
"""
