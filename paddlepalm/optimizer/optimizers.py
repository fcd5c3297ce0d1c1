"""Optimizers: Adam, AdamW and LAMB with decoupled weight decay (no decay on bias/LayerNorm),
global-norm gradient clipping, layer-wise LR decay and a separate head LR.

PALM 2.x scripts construct ``Adam(loss_var, lr, lr_schedualer)`` before the trainer knows its
parameters; the Paddle optimizer is therefore built later by :meth:`Optimizer.build`.
"""
from typing import Iterable, Optional, Tuple

from paddlepalm.lr_sched.schedules import ConstantScheduler, Schedule
from paddlepalm.optimizer.param_groups import decay_names, lr_multipliers, split


def global_norm_clip(max_norm: float):
    """Paddle's global-norm gradient clip; on CPU it leaves the gradients alone when their norm is
    at most ``max_norm`` (``auto_skip_clip``) instead of multiplying each one by exactly 1.0.

    Both ways give bit-identical gradients; skipping saves a pass over every gradient (~7% of a
    MiniLM optimizer step). On a GPU the skip test would wait for the device every step, so there
    Paddle's always-multiply path is kept.
    """
    import paddle

    on_cpu = paddle.device.get_device().startswith("cpu")
    try:
        return paddle.nn.ClipGradByGlobalNorm(float(max_norm), auto_skip_clip=on_cpu)
    except TypeError:  # a Paddle without auto_skip_clip
        return paddle.nn.ClipGradByGlobalNorm(float(max_norm))


class Optimizer:
    """Settings of an optimizer; :meth:`build` makes the Paddle optimizer for given parameters."""

    name: Optional[str] = None

    def __init__(self, loss_var=None, lr: float = 5e-5, lr_schedualer: Optional[Schedule] = None,
                 weight_decay: float = 0.0, grad_clip: Optional[float] = 1.0,
                 layer_decay: Optional[float] = None, head_lr: Optional[float] = None,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 lr_scheduler: Optional[Schedule] = None):
        self.loss_var = loss_var  # PALM compatibility; unused in dygraph
        self.lr = float(lr)
        self.schedule = lr_scheduler or lr_schedualer or ConstantScheduler()
        self.weight_decay = float(weight_decay)
        self.grad_clip = grad_clip
        self.layer_decay = layer_decay
        self.head_lr = head_lr
        self.betas = (beta1, beta2)
        self.epsilon = epsilon
        self.scheduler = None  # the paddle LRScheduler, after build()
        self.lr_factors = {}  # structured name -> LR multiplier, after build()

    def build(self, named_params: Iterable[Tuple[str, object]], num_layers: int,
              num_train_steps: int, weight_decay: Optional[float] = None):
        """Create the Paddle optimizer (and LR scheduler) over ``(name, parameter)`` pairs."""
        import paddle

        if weight_decay is not None:
            self.weight_decay = float(weight_decay)
        names, params = split(named_params)
        self.lr_factors = lr_multipliers(names, num_layers, self.layer_decay,
                                         None if self.head_lr is None else self.head_lr / self.lr)
        for name, p in zip(names, params):
            base = getattr(p, "_palm_base_lr", None)
            if base is None:
                base = p.optimize_attr.get("learning_rate", 1.0)
                p._palm_base_lr = base
            p.optimize_attr["learning_rate"] = base * self.lr_factors[name]
        decayed = {p.name for n, p in zip(names, params) if n in decay_names([n])}
        self.scheduler = self.schedule.resolve(num_train_steps).build(self.lr)
        clip = global_norm_clip(self.grad_clip) if self.grad_clip else None
        optimizer = self._make(params, decayed, clip)
        # Create every moment now (Paddle makes them lazily at a parameter's first gradient):
        # a resumed run then restores the state of heads that were not trained since the save.
        optimizer._create_accumulators(paddle.static.default_main_program().global_block(), params)
        return optimizer

    def _make(self, params, decayed, clip):
        import paddle

        return paddle.optimizer.AdamW(
            learning_rate=self.scheduler, beta1=self.betas[0], beta2=self.betas[1],
            epsilon=self.epsilon, parameters=params, weight_decay=self.weight_decay,
            apply_decay_param_fun=lambda n: n in decayed, grad_clip=clip)


class Adam(Optimizer):
    """Adam; a ``weight_decay`` is applied decoupled (``p -= lr * wd * p``), as PALM 2.x did."""

    name = "adam"


class AdamW(Optimizer):
    """AdamW (decoupled weight decay, default 0.01), no decay on biases and LayerNorm."""

    name = "adamw"

    def __init__(self, loss_var=None, lr: float = 5e-5, lr_schedualer=None, weight_decay: float = 0.01,
                 **kwargs):
        super().__init__(loss_var, lr, lr_schedualer, weight_decay=weight_decay, **kwargs)


class LAMB(Optimizer):
    """LAMB (layer-wise adaptive moments, for large batches); weight decay default 0.01."""

    name = "lamb"

    def __init__(self, loss_var=None, lr: float = 1e-3, lr_schedualer=None, weight_decay: float = 0.01,
                 **kwargs):
        kwargs.setdefault("epsilon", 1e-6)
        super().__init__(loss_var, lr, lr_schedualer, weight_decay=weight_decay, **kwargs)

    def _make(self, params, decayed, clip):
        import paddle

        return paddle.optimizer.Lamb(
            learning_rate=self.scheduler, lamb_weight_decay=self.weight_decay, beta1=self.betas[0],
            beta2=self.betas[1], epsilon=self.epsilon, parameters=params, grad_clip=clip,
            exclude_from_weight_decay_fn=lambda p: p.name not in decayed)
