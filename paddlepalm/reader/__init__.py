"""Readers: files -> examples -> tokenized features -> padded batches.

Subclass :class:`Reader` for your own data (see docs/custom_reader.md).
"""
from paddlepalm.reader.base import Reader, build_tokenizer
from paddlepalm.reader.classify import ClassifyReader
from paddlepalm.reader.joint_label import JointLabelReader, LabelView
from paddlepalm.reader.labels import LabelMap
from paddlepalm.reader.mask_lm import MaskLMReader
from paddlepalm.reader.match import MatchReader
from paddlepalm.reader.mrc import MRCReader
from paddlepalm.reader.sequence_label import SequenceLabelReader
from paddlepalm.registry import READERS

READERS.register("classify", ClassifyReader)
READERS.register("mrc", MRCReader)
READERS.register("mask_lm", MaskLMReader)
READERS.register("sequence_label", SequenceLabelReader)
READERS.register("match", MatchReader)
READERS.register("joint_label", JointLabelReader)

__all__ = ["Reader", "ClassifyReader", "MRCReader", "MaskLMReader", "LabelMap", "build_tokenizer", "READERS",
           "SequenceLabelReader", "MatchReader", "JointLabelReader", "LabelView"]
