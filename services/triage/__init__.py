"""Triage: two processes — ``worker`` (classifies and decides every mention) and
``web`` (the moderators' page, the team feeds, the JSON API and their database) —
sharing only the rules (``rules.py``), the classifier and ``config.py``."""
