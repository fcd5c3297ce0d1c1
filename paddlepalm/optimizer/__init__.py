"""Optimizers (Adam, AdamW, LAMB) with clipping, layer-wise LR decay and a head LR."""
from paddlepalm.optimizer.optimizers import LAMB, Adam, AdamW, Optimizer
from paddlepalm.optimizer.param_groups import decay_names, layer_depth, lr_multipliers
from paddlepalm.registry import OPTIMIZERS

for _cls in (Adam, AdamW, LAMB):
    OPTIMIZERS.register(_cls.name, _cls)

__all__ = ["Optimizer", "Adam", "AdamW", "LAMB", "decay_names", "layer_depth", "lr_multipliers"]
