"""Contracts and plumbing shared by every takeaction service.

Message models (`messages`), topic names (`topics`), Kafka settings (`kafka`),
the JSON codec (`codec`), dead letters (`dlq`), topic bootstrap (`bootstrap`),
the embedded broker launcher (`broker`) and the embedded stack (`stack`).
"""
