"""``palm.Trainer``: one task -- PALM 2.x's single-task API (see :mod:`paddlepalm.compat.palm2`)."""
from paddlepalm.compat.palm2 import Trainer

__all__ = ["Trainer"]
