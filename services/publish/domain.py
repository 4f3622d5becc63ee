"""The publisher's decisions, as pure functions over a snapshot of the ledger.

The governor is checked before every post. Each rule is a function that returns
``None`` (allow) or why it refuses, and :func:`check` makes that a
:class:`Refusal` named after the rule; the caller queries the ledger into a
:class:`Snapshot` first and records every refusal.

============================  ==================================================
rule                          refuses when
============================  ==================================================
``engaged``                   the asker did not engage the campaign in that mention
                              (mention of its account / its hashtag, configurable)
``opted_out``                 the asker opted out (a "stop" reply, a moderator)
``consent``                   the consent's scope does not cover publishing, or
                              the speaker withdrew it (after it was recorded)
``x_reply_allowed``           X would refuse the reply: the post neither @mentions
                              nor quotes the campaign account (X's rule since
                              2026-02-23 for self-serve apps)
``one_reply_per_question``    another reply to the question is live
``author_daily_cap``          the asker got ``author_daily_cap`` replies in 24 h
``variation``                 every template, plain or addressed to the asker,
                              gives the text of the previous reply (or of a
                              recent one still up)
============================  ==================================================

Not a refusal: a reply whose person filmed is paused (``speaker_paused``, from the
triage web on ``speakers.paused``) is *held* before any of these rules, and asked
again when the person is resumed; :func:`supersedes` says which of two pause or
resume decisions about one person is in force.

Also here: how a mention engaged the campaign, and whether it is an opt-out. The
templates and their rendering are :mod:`services.common.replies`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from services.common.messages import PublishReply
from services.common.replies import Templates, ordered, render
from services.common.replyability import replyability
from services.publish.config import PublishSettings

ENGAGED = "engaged"
OPTED_OUT = "opted_out"
CONSENT = "consent"
X_REPLY_ALLOWED = "x_reply_allowed"
ONE_REPLY_PER_QUESTION = "one_reply_per_question"
AUTHOR_DAILY_CAP = "author_daily_cap"
VARIATION = "variation"

#: Every rule name, in the order they are checked.
RULES = (
    ENGAGED,
    OPTED_OUT,
    CONSENT,
    X_REPLY_ALLOWED,
    ONE_REPLY_PER_QUESTION,
    AUTHOR_DAILY_CAP,
    VARIATION,
)

#: Not a rule of :data:`RULES`: the hold of a reply whose person is paused.
SPEAKER_PAUSED = "speaker_paused"

ACCOUNT = "account"
HASHTAG = "hashtag"


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


@dataclass(frozen=True)
class Policy:
    """The governor's configuration (from :class:`PublishSettings`)."""

    engagement: frozenset[str] = frozenset({ACCOUNT, HASHTAG})
    author_daily_cap: int = 2
    consent_scopes: frozenset[str] = frozenset({"campaign-social"})
    default_language: str = "en"
    x_allow_urls: bool = False

    @classmethod
    def from_settings(cls, settings: PublishSettings) -> Policy:
        return cls(
            engagement=frozenset(settings.engagement),
            author_daily_cap=settings.author_daily_cap,
            consent_scopes=frozenset(settings.consent_scopes),
            default_language=settings.default_language,
            x_allow_urls=settings.x_allow_urls,
        )


@dataclass(frozen=True)
class EngagementFact:
    """A mention that engaged the campaign, as the mentions reader recorded it."""

    author_id: str
    how: frozenset[str]


@dataclass(frozen=True)
class OptOutFact:
    source: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class WithdrawalFact:
    at: datetime
    withdrawn_by: str
    reason: str = ""


@dataclass(frozen=True)
class PauseFact:
    """A pause (``paused``) or resume of one person, decided at ``at``."""

    paused: bool
    at: datetime
    decided_by: str
    reason: str = ""


def supersedes(new: PauseFact, current: PauseFact | None) -> bool:
    """Whether ``new`` replaces the decision in force: a later one does, an older one
    never (a redelivered command, one sent again at a new broker epoch); at the same
    instant, a pause does (when in doubt, hold)."""
    if current is None:
        return True
    if new.at != current.at:
        return new.at > current.at
    return new.paused and not current.paused


def held(request: PublishReply, pause: PauseFact | None) -> str | None:
    """Why ``request`` is held rather than sent (its person is paused), or None."""
    if pause is None or not pause.paused:
        return None
    reason = f" ({pause.reason})" if pause.reason else ""
    return (
        f"publishing {request.consent.speaker_ref} paused by {pause.decided_by} "
        f"at {pause.at.isoformat()}{reason}"
    )


@dataclass(frozen=True)
class Snapshot:
    """What the governor needs to know from the ledger about one reply.

    Everything excludes the reply itself (a retry is judged like the first try).
    """

    engagement: EngagementFact | None = None
    opt_out: OptOutFact | None = None
    #: Withdrawals that cover this speaker and question.
    withdrawals: tuple[WithdrawalFact, ...] = ()
    #: Another live reply (sending, published, withdrawn) to the same question.
    other_live_reply: str | None = None
    #: Live replies to the same author on the same platform in the last 24 hours.
    author_replies_24h: int = 0
    #: The account's previous reply (text and template): its text is never repeated.
    previous_text: str | None = None
    previous_template: str | None = None
    #: Texts of the account's recent replies still up (X refuses a duplicate of any).
    recent_texts: frozenset[str] = frozenset()


#: A rule: None when it allows the reply, else why it refuses (:func:`check` names the
#: refusal after the rule).
Rule = Callable[[PublishReply, Snapshot, Policy, datetime], str | None]


def check_engaged(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    fact = snapshot.engagement
    if fact is None:
        return f"no record of mention {request.mention_id} engaging the campaign"
    if fact.author_id != request.author.id:
        return (
            f"mention {request.mention_id} is by author {fact.author_id}, "
            f"not {request.author.id} the reply would go to"
        )
    if not fact.how & policy.engagement:
        return (
            f"mention {request.mention_id} engaged by {', '.join(sorted(fact.how))}; "
            f"accepted: {', '.join(sorted(policy.engagement))}"
        )
    return None


def check_not_opted_out(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    if snapshot.opt_out is None:
        return None
    reason = f" ({snapshot.opt_out.reason})" if snapshot.opt_out.reason else ""
    return (
        f"{request.platform.value} author {request.author.id} opted out "
        f"({snapshot.opt_out.source}) at {snapshot.opt_out.at.isoformat()}{reason}"
    )


def check_consent(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    consent = request.consent
    if consent.scope not in policy.consent_scopes:
        return (
            f"consent scope {consent.scope!r} of {consent.speaker_ref} does not cover "
            f"publishing (accepted: {', '.join(sorted(policy.consent_scopes))})"
        )
    if consent.at > now:
        return f"consent of {consent.speaker_ref} is dated in the future"
    withdrawn = [w for w in snapshot.withdrawals if w.at >= consent.at]
    if withdrawn:
        first = min(withdrawn, key=lambda w: w.at)
        return (
            f"consent of {consent.speaker_ref} withdrawn by {first.withdrawn_by} "
            f"at {first.at.isoformat()}"
        )
    return None


def check_x_reply_allowed(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    """X refuses (403) a reply to a post that did not summon the account: refuse it
    here, before any media is uploaded. The command says whether the mention
    summoned us; an older command does not, and then the mention as the
    publisher read it decides (a hashtag alone does not summon)."""
    if request.standalone:  # a post of its own: X's rule on replies does not apply
        return None
    summoned = request.summoned
    if summoned is None and snapshot.engagement is not None:
        summoned = ACCOUNT in snapshot.engagement.how
    verdict = replyability(request.platform, summoned)
    if verdict.can_reply:
        return None
    return f"X would refuse this reply: {verdict.reason}"


def check_one_reply_per_question(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    if snapshot.other_live_reply is None:
        return None
    return f"question {request.question_id} already has reply {snapshot.other_live_reply}"


def check_author_daily_cap(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> str | None:
    if snapshot.author_replies_24h < policy.author_daily_cap:
        return None
    return (
        f"author {request.author.id} got {snapshot.author_replies_24h} replies in 24 h "
        f"(cap {policy.author_daily_cap})"
    )


#: The rules about whether this person may get this reply at all, by name.
ELIGIBILITY: tuple[tuple[str, Rule], ...] = (
    (ENGAGED, check_engaged),
    (OPTED_OUT, check_not_opted_out),
    (CONSENT, check_consent),
    (X_REPLY_ALLOWED, check_x_reply_allowed),
    (ONE_REPLY_PER_QUESTION, check_one_reply_per_question),
    (AUTHOR_DAILY_CAP, check_author_daily_cap),
)


def check(
    request: PublishReply, snapshot: Snapshot, policy: Policy, now: datetime
) -> list[Refusal]:
    """Every eligibility rule that refuses (all of them are checked, for the audit)."""
    return [
        Refusal(name, why)
        for name, rule in ELIGIBILITY
        if (why := rule(request, snapshot, policy, now)) is not None
    ]


# --- templates (services.common.replies: the triage web previews with the same) --------


@dataclass(frozen=True)
class Composed:
    text: str
    template_id: str


def compose(
    request: PublishReply, snapshot: Snapshot, templates: Templates, policy: Policy
) -> Composed | Refusal:
    """The reply's text: one template of its language per answer (chosen by
    ``replies.answer_key``, so the replies of one answer read the same everywhere), plain,
    or addressed to its asker when the plain text is the account's previous reply or
    a recent one still up (X refuses a duplicate); another template only when every
    form of this one is taken."""
    candidates = ordered(request, templates, policy.default_language)
    # Plain first; then addressed to the asker, which is what tells apart the
    # replies of one answer sent to every asker of a cluster.
    urls = policy.x_allow_urls
    rendered = [
        (t, render(t, request, address=address, allow_urls=urls))
        for t in candidates
        for address in (False, True)
    ]
    fresh = [
        (t, text)
        for t, text in rendered
        if text != snapshot.previous_text and text not in snapshot.recent_texts
    ]
    if not fresh:
        return Refusal(
            VARIATION,
            f"every template renders the text of the previous or a recent reply "
            f"({len(candidates)} tried, also addressed to @{request.author.handle})",
        )
    template, text = fresh[0]
    return Composed(text, template.id)


# --- mentions: engagement and opt-outs -----------------------------------------------


def _pattern(prefix: str, names: Iterable[str]) -> re.Pattern[str] | None:
    cleaned = [re.escape(n.lstrip(prefix)) for n in names if n.lstrip(prefix)]
    if not cleaned:
        return None
    return re.compile(rf"(?<![\w{prefix}]){prefix}(?:{'|'.join(cleaned)})(?!\w)", re.IGNORECASE)


def engagement(text: str, handles: Iterable[str], hashtags: Iterable[str]) -> frozenset[str]:
    """How ``text`` engages the campaign: ``account`` (mentions ``@handle``, also
    ``@handle@instance``), ``hashtag`` (uses ``#tag``); empty when neither."""
    how: set[str] = set()
    account = _pattern("@", handles)
    if account is not None and account.search(text):
        how.add(ACCOUNT)
    tag = _pattern("#", hashtags)
    if tag is not None and tag.search(text):
        how.add(HASHTAG)
    return frozenset(how)


#: Whole-message opt-outs, normalised (lower case, no accents, no punctuation).
OPT_OUT_PHRASES = frozenset(
    {
        # en
        "stop", "stop please", "please stop", "stop it", "unsubscribe", "opt out", "optout",
        "stop replying", "stop replying to me", "stop messaging me", "dont reply",
        "do not reply", "no more replies", "leave me alone",
        # fr
        "arrete", "arretez", "arrete svp", "arretez svp", "stop merci", "desabonner",
        "desinscription", "ne me repondez plus",
        # es
        "para", "parar", "basta", "alto", "detente", "baja", "cancelar", "no me respondas",
        # de
        "stopp", "aufhoren", "hor auf", "horen sie auf", "abmelden", "abbestellen",
        # ar
        "توقف", "توقفوا", "اوقف", "الغاء الاشتراك", "لا ترد",
    }
)  # fmt: skip

_MENTION = re.compile(r"(?<!\w)@[\w.\-]+(?:@[\w.\-]+)?")
_URL = re.compile(r"https?://\S+")
_NOT_WORD = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    """Lower case, accents, mentions, links, punctuation and emoji removed."""
    text = _URL.sub(" ", _MENTION.sub(" ", text))
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = _NOT_WORD.sub(" ", stripped.replace("'", "").replace("\u2019", "")).split()
    return " ".join(words)


def is_opt_out(text: str) -> bool:
    """True when the whole message (mentions and links aside) asks us to stop.

    Whole-message matching only: "don't stop asking!" is not an opt-out.
    """
    return normalise(text) in OPT_OUT_PHRASES
