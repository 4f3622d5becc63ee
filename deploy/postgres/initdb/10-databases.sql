-- Run once, by the official postgres image, when its volume is empty.
-- One database per service that owns state: each keeps its own tables and its own
-- alembic_version, so neither service's migrations can touch the other's.
CREATE DATABASE triage OWNER takeaction;
CREATE DATABASE publish OWNER takeaction;
