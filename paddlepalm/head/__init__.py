"""Heads: task output layers, losses, predictions and metrics."""
from paddlepalm.head.base import Head
from paddlepalm.head.classify import Classify
from paddlepalm.head.mask_lm import MaskLM
from paddlepalm.head.match import Match
from paddlepalm.head.mrc import MRC
from paddlepalm.head.sequence_label import SequenceLabel
from paddlepalm.registry import HEADS

HEADS.register("classify", Classify)
HEADS.register("mrc", MRC)
HEADS.register("mask_lm", MaskLM)
HEADS.register("sequence_label", SequenceLabel)
HEADS.register("match", Match)

__all__ = ["Head", "Classify", "MRC", "MaskLM", "HEADS", "SequenceLabel", "Match"]
