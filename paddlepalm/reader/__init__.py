"""Readers: files -> examples -> tokenized features -> padded batches.

Subclass :class:`Reader` for your own data (see docs/custom_reader.md).
"""
from paddlepalm.reader.base import Reader, build_tokenizer
from paddlepalm.reader.classify import ClassifyReader
from paddlepalm.reader.labels import LabelMap
from paddlepalm.registry import READERS

READERS.register("classify", ClassifyReader)

__all__ = ["Reader", "ClassifyReader", "LabelMap", "build_tokenizer", "READERS"]
