"""Loss balancing and gradient surgery for steps that train several tasks at once.

Registered names: ``fixed``, ``uncertainty``, ``dwa`` (one backward of a weighted loss sum) and
``gradnorm``, ``pcgrad``, ``cagrad`` (one backward per task, on flat per-task gradients of the
shared encoder). See :class:`Balancer` for the protocol and docs/balancing.md for the methods.
"""
from paddlepalm.balancing.base import Balancer, GradientDiagnostics
from paddlepalm.balancing.gradnorm import GradNorm
from paddlepalm.balancing.per_task import PerTaskGradients
from paddlepalm.balancing.surgery import CAGrad, PCGrad, cagrad_coefficients, pcgrad_coefficients
from paddlepalm.balancing.weighting import DynamicWeightAverage, FixedWeights, LossWeighting, UncertaintyWeighting
from paddlepalm.registry import BALANCERS

for _cls in (FixedWeights, UncertaintyWeighting, DynamicWeightAverage, GradNorm, PCGrad, CAGrad):
    BALANCERS.register(_cls.name, _cls)

__all__ = ["Balancer", "GradientDiagnostics", "LossWeighting", "PerTaskGradients", "FixedWeights",
           "UncertaintyWeighting", "DynamicWeightAverage", "GradNorm", "PCGrad", "CAGrad",
           "pcgrad_coefficients", "cagrad_coefficients", "BALANCERS"]
