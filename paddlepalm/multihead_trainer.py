"""``palm.MultiHeadTrainer``: several tasks over one shared encoder (see :mod:`paddlepalm.compat.palm2`
for PALM 2.x's methods and :class:`paddlepalm.engine.Engine` for ``fit`` / ``evaluate`` / ``predict``)."""
from paddlepalm.compat.palm2 import MultiHeadTrainer
from paddlepalm.engine.callbacks.evaluation import objective_score as _objective_score  # noqa: F401

__all__ = ["MultiHeadTrainer"]
