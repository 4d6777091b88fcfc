"""Ingest: vendor events in, normalised, deduplicated and attributed to accounts; facts out."""
