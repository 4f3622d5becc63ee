"""Streaming sources of mentions (X filtered stream, Mastodon). Each builds
:class:`~services.common.messages.MentionReceived` values and hands them to a
:class:`~services.ingest.sink.MentionSink`; none of them knows about Kafka."""
