"""Triage: classifies mentions (abuse, questions, relevance), prioritises and
routes them; owns the moderators' database and web page."""
