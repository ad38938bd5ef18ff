"""Observability: JSON logs, Prometheus metrics under gunicorn, health."""
