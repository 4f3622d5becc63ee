"""The dev-only stack: ``make run``'s supervisor, the embedded broker, the
config-table generator and the demo mentions. Not in the production image."""
