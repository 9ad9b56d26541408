"""Administration: websites and tokens, shared by the command line and the admin API."""

from __future__ import annotations

from .sites import Site, SiteError, Sites

__all__ = ["Site", "SiteError", "Sites"]
