"""The OpenAPI 3.1 document of the service, served at GET /openapi.json.

Error messages and limits come from the modules that answer, so the document cannot
state one they do not send; tests/test_openapi.py checks it against the routes and
runs Schemathesis against the live app with it.
"""

from __future__ import annotations

from .admin import PUBLIC_KEY, TOKEN_ID
from .root import document, endpoint
from .schemas import WEBSITE_ID

__all__ = ["PUBLIC_KEY", "TOKEN_ID", "WEBSITE_ID", "document", "endpoint"]
