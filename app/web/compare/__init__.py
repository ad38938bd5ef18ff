"""The compare page: two to five jobs side by side."""
