"""HTTP routes of ingest."""
