"""appt-tools: appointment-booking tools for AI assistants, over Cal.com API v2 with a local store."""

__version__ = "0.1.0"
