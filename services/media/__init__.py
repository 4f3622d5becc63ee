"""The media worker: posters, transcripts and renditions of answer videos, made off
the web process from the triage database's job table (README)."""
