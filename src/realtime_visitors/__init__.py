"""realtime-visitors: how many people are on my site right now."""

from __future__ import annotations

__version__ = "0.1.0"
