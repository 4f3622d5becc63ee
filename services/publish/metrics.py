"""Prometheus metrics of the publisher (module level: one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REPLIES = Counter(
    "publish_replies_total",
    "Outcomes of replies.requested, by platform and result (published, reconciled, "
    "refused, failed, failed_retryable, repeated, held)",
    ["platform", "result"],
)
REFUSALS = Counter(
    "publish_refusals_total", "Governor refusals, by rule (one reply can break several)", ["rule"]
)
RATE_LIMIT_PAUSES = Counter(
    "publish_rate_limit_pauses_total", "Replies put off because the account was rate limited",
    ["platform"],
)  # fmt: skip
MENTION_WAITS = Counter(
    "publish_mention_waits_total",
    "Replies put off because their mention was not read from mentions.raw yet",
)
RETRIES = Counter(
    "publish_retries_total", "Tries of a reply that ended in a retryable error", ["platform"]
)
WITHDRAWALS = Counter(
    "publish_withdrawals_total",
    "Published replies taken down after a consent withdrawal, by result "
    "(deleted, already_gone, error)",
    ["platform", "result"],
)
SPEAKER_PAUSES = Counter(
    "publish_speaker_pauses_total",
    "speakers.paused commands, by action (pause, resume) and result (applied, stale: "
    "older than the decision recorded)",
    ["action", "result"],
)
RELEASED = Counter(
    "publish_released_replies_total",
    "Replies held while their person was paused, requested again after the resume",
)
OPT_OUTS = Counter("publish_opt_outs_total", "Opt-outs recorded, by source", ["source"])
REJECTED_COMMANDS = Counter(
    "publish_rejected_commands_total",
    "Commands refused before anything was done, by topic and reason (unsigned, "
    "bad_signature, unknown_key, malformed, not_the_mention, media_outside_root, "
    "post_already_answered): each is dead-lettered, never posted",
    ["topic", "reason"],
)
DEAD_LETTERS = Counter(
    "publish_dead_letters_total", "Inputs dead-lettered, by topic and stage", ["topic", "stage"]
)
CONSUMER_LAG = Gauge(
    "publish_consumer_lag", "Records behind the end of the partition, after the last one handled",
    ["topic", "partition"],
)  # fmt: skip
X_SPEND = Counter(
    "publish_x_spend_usd_total", "US dollars X billed (pay-per-use), by account and call class",
    ["account", "call_class"],
)  # fmt: skip
X_CALLS = Counter(
    "publish_x_calls_total", "X calls counted in the spend ledger, by account and call class",
    ["account", "call_class"],
)  # fmt: skip
X_SPEND_MONTH = Gauge(
    "publish_x_spend_month_usd", "This month's X spend (UTC calendar month)", ["account"]
)
X_BUDGET_PAUSED = Gauge(
    "publish_x_budget_paused",
    "1 while publishing on X is paused because a daily or monthly budget is spent",
    ["account"],
)
X_CREDITS_EXHAUSTED = Counter(
    "publish_x_credits_exhausted_total",
    "Calls X refused because the account's pay-per-use credits are exhausted",
    ["account"],
)
PROTECT_READS = Counter(
    "publish_protect_reads_total",
    "Reads of the replies under a published answer, by platform and result (ok, error)",
    ["platform", "result"],
)
PROTECT_REPLIES_SEEN = Counter(
    "publish_protect_replies_seen_total",
    "Replies under our published answers seen for the first time, by platform",
    ["platform"],
)
PROTECT_ACTIONS = Counter(
    "publish_protect_actions_total",
    "Hide / unhide commands settled, by platform, action and state (done, failed, refused)",
    ["platform", "action", "state"],
)
