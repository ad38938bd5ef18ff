"""Observability: JSON logs, Prometheus metrics under gunicorn, detailed health."""
