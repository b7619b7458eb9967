"""HTTP plumbing every endpoint shares: forms read as hostile input, JSON and error responses,
CORS, page security, the bounded request head, the access log and request turns."""
