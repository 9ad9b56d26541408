"""Tracking: who is behind a pageview (client address, crawler, visitor id) and where
it was (page, source, country). Pure logic: no Redis, no HTTP."""
