"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a client
names itself with an https URL, and the document there is its registration (decision 0015)."""

from deputize.server.client_documents.document import METADATA_DOCUMENT, parse_document
from deputize.server.client_documents.errors import ClientDocumentError
from deputize.server.client_documents.fetch import looks_like_document_url
from deputize.server.client_documents.resolver import ClientDocuments

__all__ = [
    "METADATA_DOCUMENT",
    "ClientDocumentError",
    "ClientDocuments",
    "looks_like_document_url",
    "parse_document",
]
