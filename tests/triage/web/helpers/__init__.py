"""Helpers of the triage web's tests: ``store`` (migrated stores, classified
messages, a desk of questions, reading the outbox and the timeline) and ``app``
(the seeded app behind a TestClient or a live server, people, HTML helpers).
The fixtures built on them are in the conftest files."""
