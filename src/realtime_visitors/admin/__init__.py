"""Administration: websites and tokens, shared by the command line and the admin API."""

from __future__ import annotations

from .sites import NotFound, Site, SiteError, SiteExists, Sites

__all__ = ["NotFound", "Site", "SiteError", "SiteExists", "Sites"]
