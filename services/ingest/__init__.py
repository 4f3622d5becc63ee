"""Ingest: hears mentions (webhook, X filtered stream, Mastodon, replay) and
produces each once to ``mentions.raw``."""
