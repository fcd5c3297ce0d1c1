"""Heads: task output layers, losses, predictions and metrics."""
from paddlepalm.head.base import Head
from paddlepalm.head.classify import Classify
from paddlepalm.registry import HEADS

HEADS.register("classify", Classify)

__all__ = ["Head", "Classify", "HEADS"]
