"""The HTML pages (Jinja + htmx): one blueprint package per area, each with its routes, forms and view models."""
