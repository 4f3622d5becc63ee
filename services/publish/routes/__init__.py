"""HTTP routes of the publisher: health, metrics and the moderators' opt-outs."""
