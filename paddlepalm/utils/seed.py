"""Seeding every random number generator a training script uses."""
import random


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and Paddle (``paddle.seed``)."""
    import numpy as np
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
