"""Dataset pages: the list, upload, and the detail page with its report and preview."""
