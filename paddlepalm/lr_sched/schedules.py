"""Learning-rate schedules as pure multiplier functions of the step, wrapped for Paddle.

Each schedule's :meth:`multiplier` maps an optimizer step to a factor of the base LR, which is easy
to test and to plot; :meth:`build` turns it into a ``paddle.optimizer.lr.LambdaDecay``.
"""
import math
from typing import Optional


class Schedule:
    """Base class: ``multiplier(step)`` in [0, 1]; ``num_train_steps`` may be set by the trainer."""

    name: Optional[str] = None

    def __init__(self, warmup_steps: int = 0, num_train_steps: Optional[int] = None,
                 warmup_ratio: Optional[float] = None):
        self.warmup_steps = int(warmup_steps)
        self.num_train_steps = None if num_train_steps is None else int(num_train_steps)
        self.warmup_ratio = warmup_ratio

    def resolve(self, num_train_steps: int) -> "Schedule":
        """Fill in the total steps (and a warmup given as a ratio) once the trainer knows them."""
        if self.num_train_steps is None:
            self.num_train_steps = int(num_train_steps)
        if self.warmup_ratio is not None:
            self.warmup_steps = int(self.warmup_ratio * self.num_train_steps)
        return self

    def _warmup(self, step: int) -> Optional[float]:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return None

    def multiplier(self, step: int) -> float:
        raise NotImplementedError

    def build(self, base_lr: float):
        import paddle

        return paddle.optimizer.lr.LambdaDecay(learning_rate=base_lr, lr_lambda=self.multiplier)


class TriangularScheduler(Schedule):
    """Linear warmup to the base LR, then linear decay to 0 at ``num_train_steps``."""

    name = "triangular"

    def multiplier(self, step: int) -> float:
        warm = self._warmup(step)
        if warm is not None:
            return warm
        total = self.num_train_steps or 1
        return max(0.0, 1.0 - step / total)


class WarmupCosineScheduler(Schedule):
    """Linear warmup, then half a cosine from the base LR down to 0."""

    name = "cosine"

    def multiplier(self, step: int) -> float:
        warm = self._warmup(step)
        if warm is not None:
            return warm
        total = max(1, (self.num_train_steps or 1) - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / total)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class ConstantWarmupScheduler(Schedule):
    """Linear warmup, then the constant base LR."""

    name = "constant"

    def multiplier(self, step: int) -> float:
        warm = self._warmup(step)
        return 1.0 if warm is None else warm


class ConstantScheduler(ConstantWarmupScheduler):
    """The base LR throughout (no warmup)."""

    name = "none"

    def __init__(self, *args, **kwargs):
        super().__init__(0)


# PALM 2.x names. PALM's WarmupSchedualer returned None (a bug); here it is a real schedule.
TriangularSchedualer = TriangularScheduler
WarmupSchedualer = ConstantWarmupScheduler
