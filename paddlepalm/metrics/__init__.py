"""Evaluation metrics in pure Python/numpy (no Paddle import): classification, entity-level
sequence labelling (conlleval semantics) and SQuAD-style extractive QA."""
from paddlepalm.metrics.classification import (
    accuracy,
    multilabel_f1,
    multilabel_precision_recall_f1,
    precision_recall_f1,
    subset_accuracy,
)
from paddlepalm.metrics.sequence import entity_f1, extract_entities
from paddlepalm.metrics.squad import (
    exact_match,
    max_f1,
    normalize_answer,
    squad_references,
    squad_scores,
    token_f1,
)

__all__ = [
    "accuracy", "precision_recall_f1", "multilabel_precision_recall_f1", "multilabel_f1",
    "subset_accuracy", "extract_entities", "entity_f1", "normalize_answer", "exact_match",
    "token_f1", "max_f1", "squad_scores", "squad_references",
]
