"""A question cue decides where the question head was unsure: the mention's score
is raised to the rules' question threshold and the cue cited
(:func:`with_question_cue`). The cues themselves: :mod:`services.triage.classifier.questions`
(the multilingual question head reads them too)."""

from __future__ import annotations

from services.common.messages import Scores
from services.triage.classifier.questions import QuestionCue, question_cue
from services.triage.classifier.textbits import language
from services.triage.rules import Decisions

__all__ = ["QuestionCue", "cue_for_decision", "question_cue", "with_question_cue"]


def cue_for_decision(
    text: str, lang: str | None, question_score: float, decisions: Decisions
) -> str | None:
    """Why a mention the question head scored below ``decisions.question`` is a
    question after all (its reason's text); ``None``: the score decides."""
    settings = decisions.question_cues
    if question_score >= decisions.question or not settings.enabled:
        return None
    if language(lang) in settings.except_languages:
        return None
    cue = question_cue(text, lang)
    if cue is None:
        return None
    return f"question {question_score:.2f} < {decisions.question:.2f} but {cue.describe()}"


def with_question_cue(
    scores: Scores, text: str, lang: str | None, decisions: Decisions
) -> tuple[Scores, str | None]:
    """``scores`` as the decision carries them on, and the cue's reason if a cue
    decided: then the question score is raised to ``decisions.question`` (the
    threshold, still below auto-assign's), so score and decision agree; the head's
    own score is in the reason."""
    cue = cue_for_decision(text, lang, scores.question, decisions)
    if cue is None:
        return scores, None
    return scores.model_copy(update={"question": decisions.question}), cue
