"""The triage stream worker: ``mentions.raw`` in batches → classifier → decisions
(``domain.py``) → ``mentions.classified`` / ``mentions.quarantined``."""
