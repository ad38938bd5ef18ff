"""Accounts: users, passwords, API tokens and the login throttle (service.py); the pages live in app/web/auth."""
