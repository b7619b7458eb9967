"""The one refusal of this package: a client ID metadata document that cannot be used."""

from __future__ import annotations

from deputize.server.errors import InvalidClientError


class ClientDocumentError(InvalidClientError):
    """The document at a URL ``client_id`` could not be fetched or is not acceptable.

    An ``invalid_client`` (RFC 6749 §5.2) at the token endpoint; the authorization endpoint
    shows it on an error page and never redirects (the redirect URIs are unverified).  The
    draft's §4 (-00, "Client Information Discovery" in later revisions): on an error
    response the authorization server SHOULD abort the request; nothing is cached.
    """

    def __init__(self, description: str, *, client_id: str) -> None:
        super().__init__(f"client metadata document refused: {description}", client_id=client_id)
        #: Why, in words a person can read on the sign-in error page.
        self.reason = description
