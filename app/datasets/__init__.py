"""Datasets: streamed upload, validation, statistics, preview and deletion; the pages live in app/web/datasets."""
