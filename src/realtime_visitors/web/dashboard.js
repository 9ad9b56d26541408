// The dashboard: written in its own change.
