"""Login, logout and the API-token settings page."""
