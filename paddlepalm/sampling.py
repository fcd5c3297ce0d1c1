"""Moved to :mod:`paddlepalm.engine.sampling`; this name stays importable."""
from paddlepalm.engine.sampling import *  # noqa: F401,F403
from paddlepalm.engine.sampling import (STRATEGIES, Sampler, TaskInfo, annealed_alpha,  # noqa: F401
                                        annealed_probs, mix_ratio_probs, temperature_probs)
