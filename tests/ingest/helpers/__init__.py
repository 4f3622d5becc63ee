"""Helpers of ingest's tests: a sink that records what it is given (``sink``) and
fake X and Mastodon servers (``fake_x``, ``fake_mastodon``)."""
