"""Contracts and plumbing shared by every takeaction service (no service imports here).

Message models (`messages`), topic names (`topics`), Kafka settings (`kafka`),
the JSON codec (`codec`), dead letters (`dlq`), topic bootstrap (`bootstrap`),
HTTP (`http`), databases (`db`), settings (`config`) and logs (`logs`).
"""
