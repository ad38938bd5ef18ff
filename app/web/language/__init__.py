"""The language switch of the page footer."""
