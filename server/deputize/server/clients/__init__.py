"""Clients: how they authenticate, their secrets, and the key sets they publish."""
