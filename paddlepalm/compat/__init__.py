"""Compatibility with PALM 2.x scripts: ``Trainer`` and ``MultiHeadTrainer`` (see :mod:`.palm2`)."""
from paddlepalm.compat.palm2 import MultiHeadTrainer, Trainer

__all__ = ["MultiHeadTrainer", "Trainer"]
