"""The tests' toolkit: one module per concern (listed in docs/DEVELOPMENT.md); fixtures stay in conftest files."""
