"""The MiniLM -> e5 bridge: the fit, its file, the version check, and (on the committed
bridge, with both real encoders) that a bridged English question lands nearest to its
own translations among other camp questions in four languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.triage.classifier import bridge
from services.triage.classifier.bridge import Bridge, BridgeMetadata, bridge_for, fit

META = BridgeMetadata("b-1", "minilm-1", "e5", 100, 1.0, 0.9, 0.8)


def test_the_fit_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(3)
    source = rng.normal(size=(400, 6)).astype(np.float32)
    true = rng.normal(size=(6, 4)).astype(np.float32)
    target = source @ true + 0.5

    weight = fit(source, target, ridge=1e-6)

    np.testing.assert_allclose(weight[:-1], true, atol=1e-3)
    np.testing.assert_allclose(weight[-1], 0.5, atol=1e-3)


def test_projections_are_unit_rows_and_the_file_round_trips(tmp_path: Path) -> None:
    weight = (np.arange(20).reshape(5, 4) / 10).astype(np.float32)
    original = Bridge(weight, META)
    original.save(tmp_path)

    loaded = Bridge.load(tmp_path)
    rows = loaded.project(np.ones((3, 4), dtype=np.float32))

    assert loaded.metadata == META
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(rows, original.project(np.ones((3, 4), np.float32)), atol=1e-3)


def test_the_bridge_is_used_only_with_the_english_model_it_was_fitted_on(
    tmp_path: Path,
) -> None:
    Bridge(np.eye(5, 4, dtype=np.float32), META).save(tmp_path)

    class English:
        def __init__(self, version: str) -> None:
            self.version = version

    class Router:
        def __init__(self, version: str) -> None:
            self.english = English(version)

    assert bridge_for(Router("minilm-1"), tmp_path) is not None
    assert bridge_for(Router("minilm-1+bf16"), tmp_path) is not None  # same model, bf16 CPU
    assert bridge_for(Router("minilm-2"), tmp_path) is None
    assert bridge_for(Router("minilm-1"), tmp_path / "none") is None


#: The same six camp questions in English, French, German, Spanish and Arabic (handmade).
QUESTIONS = [
    (
        "How do children in the camp go to school?",
        "Comment les enfants du camp vont-ils à l'école ?",
        "Wie gehen die Kinder im Lager zur Schule?",
        "¿Cómo van los niños del campamento a la escuela?",
        "كيف يذهب الأطفال في المخيم إلى المدرسة؟",
    ),
    (
        "Where do you get clean drinking water?",
        "Où trouvez-vous de l'eau potable ?",
        "Woher bekommt ihr sauberes Trinkwasser?",
        "¿De dónde sacan agua potable?",
        "من أين تحصلون على مياه الشرب النظيفة؟",
    ),
    (
        "How can I donate to help the refugees?",
        "Comment puis-je faire un don pour aider les réfugiés ?",
        "Wie kann ich spenden, um den Flüchtlingen zu helfen?",
        "¿Cómo puedo donar para ayudar a los refugiados?",
        "كيف يمكنني التبرع لمساعدة اللاجئين؟",
    ),
    (
        "What food do you eat every day?",
        "Que mangez-vous tous les jours ?",
        "Was esst ihr jeden Tag?",
        "¿Qué comen todos los días?",
        "ماذا تأكلون كل يوم؟",
    ),
    (
        "Is there a doctor in the camp?",
        "Y a-t-il un médecin dans le camp ?",
        "Gibt es einen Arzt im Lager?",
        "¿Hay un médico en el campamento?",
        "هل يوجد طبيب في المخيم؟",
    ),
    (
        "How long have you lived in the camp?",
        "Depuis combien de temps vivez-vous dans le camp ?",
        "Wie lange lebt ihr schon im Lager?",
        "¿Cuánto tiempo llevan viviendo en el campamento?",
        "منذ متى تعيشون في المخيم؟",
    ),
]


@pytest.mark.skipif(not bridge.available(), reason="no committed bridge")
def test_a_bridged_english_question_is_nearest_to_its_own_translations() -> None:
    from services.triage.classifier import transformer  # noqa: PLC0415 - torch
    from services.triage.classifier.data import normalise_text  # noqa: PLC0415
    from services.triage.classifier.encoders import E5Encoder  # noqa: PLC0415
    from services.triage.rules import RulesFile  # noqa: PLC0415
    from services.triage.worker.config import WorkerSettings  # noqa: PLC0415

    e5 = E5Encoder(num_threads=1)
    english = transformer.load_classifier([])
    committed = bridge_for(english)
    assert committed is not None, "the committed bridge is not for the committed MiniLM"
    bridged = committed.project(
        np.stack([p.embedding for p in english.classify([q[0] for q in QUESTIONS])])
    )
    others = [(i, text) for i, q in enumerate(QUESTIONS) for text in q[1:]]
    targets = e5.encode([normalise_text(text) for _, text in others])
    owner = np.array([i for i, _ in others])

    sims = bridged @ targets.T
    # Each English question's nearest translation is one of its own, and each
    # translation's nearest English question its own; at the rules' bridged threshold
    # most English questions join a translation and none another question.
    threshold = RulesFile(WorkerSettings().rules_path).current().clusters.bridged_similarity
    assert [int(owner[row.argmax()]) for row in sims] == list(range(len(QUESTIONS)))
    assert [int(col.argmax()) for col in sims.T] == owner.tolist()
    own = np.array([sims[i, owner == i].max() for i in range(len(QUESTIONS))])
    other = np.array([sims[i, owner != i].max() for i in range(len(QUESTIONS))])
    assert (own >= threshold).mean() >= 0.6, own
    assert (other < threshold).all(), other


def test_an_unreadable_bridge_is_not_used(tmp_path: Path) -> None:
    Bridge(np.eye(5, 4, dtype=np.float32), META).save(tmp_path)
    (tmp_path / bridge.METADATA_FILE).write_text('{"version": "b-0"}', encoding="utf-8")

    class English:
        version = "minilm-1"

    assert bridge_for(English(), tmp_path) is None
