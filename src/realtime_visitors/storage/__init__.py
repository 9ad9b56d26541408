"""Storage: the only layer that talks to Redis (the scripts, the key schema, the
pipelined connection, the embedded server)."""

from __future__ import annotations

from .connection import StorageError
from .keys import site_keys
from .store import Store, Visitor, Where

__all__ = ["StorageError", "Store", "Visitor", "Where", "site_keys"]
