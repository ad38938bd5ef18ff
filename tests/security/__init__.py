"""Security hardening, proven by attacking it."""
