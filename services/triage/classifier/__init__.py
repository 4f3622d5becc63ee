"""The mention classifier: a port (:class:`Classifier`) and its adapters."""

from services.triage.classifier.base import Classifier, Prediction
from services.triage.classifier.factory import load_classifier

__all__ = ["Classifier", "Prediction", "load_classifier"]
