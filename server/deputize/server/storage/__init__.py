"""Persistence: SQLAlchemy Core over SQLite or PostgreSQL, one small module per concern."""
