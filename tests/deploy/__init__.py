"""Production deployment: compose file, Dockerfiles, nginx, graceful shutdown, backups and the smoke test."""
