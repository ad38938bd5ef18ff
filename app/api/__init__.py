"""The JSON API under /api/v1, authenticated by bearer tokens: a module per resource, registered by routes.py."""
