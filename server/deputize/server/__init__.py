"""The Deputize authorization server: a Starlette application, its storage and its CLI."""

from __future__ import annotations

from deputize.server.app import create_app
from deputize.server.settings import (
    ClientConfig,
    ConfigError,
    Settings,
    load_settings,
    parse_settings,
)

__all__ = [
    "ClientConfig",
    "ConfigError",
    "Settings",
    "create_app",
    "load_settings",
    "parse_settings",
]
