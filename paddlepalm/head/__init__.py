"""Heads: task output layers, losses, predictions and metrics."""
from paddlepalm.head.base import Head
from paddlepalm.head.classify import Classify
from paddlepalm.head.mask_lm import MaskLM
from paddlepalm.head.mrc import MRC
from paddlepalm.registry import HEADS

HEADS.register("classify", Classify)
HEADS.register("mrc", MRC)
HEADS.register("mask_lm", MaskLM)

__all__ = ["Head", "Classify", "MRC", "MaskLM", "HEADS"]
