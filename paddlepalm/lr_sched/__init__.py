"""Learning-rate schedulers: triangular (warmup + linear decay), warmup + cosine, constant."""
from paddlepalm.lr_sched.schedules import (ConstantScheduler, ConstantWarmupScheduler, Schedule,
                                           TriangularScheduler, TriangularSchedualer,
                                           WarmupCosineScheduler, WarmupSchedualer)
from paddlepalm.registry import SCHEDULERS

for _cls in (TriangularScheduler, WarmupCosineScheduler, ConstantWarmupScheduler, ConstantScheduler):
    SCHEDULERS.register(_cls.name, _cls)

__all__ = ["Schedule", "TriangularScheduler", "WarmupCosineScheduler", "ConstantWarmupScheduler",
           "ConstantScheduler", "TriangularSchedualer", "WarmupSchedualer"]
