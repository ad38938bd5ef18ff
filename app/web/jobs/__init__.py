"""Job pages: the list, the new-job form with its memory estimate, the detail page with live progress."""
