"""The triage web: the moderators' queue, the recording teams' feeds and the JSON
API over the triage database (``store/``), fed by ``mentions.classified``."""
