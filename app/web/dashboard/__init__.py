"""The dashboard: running jobs (polled), counts, recent work, GPU quota and service health."""
