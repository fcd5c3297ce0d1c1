"""The balancer's side of a run: its state in checkpoints, its weights and gradient diagnostics in the logs."""
from typing import Any, Dict

from paddlepalm.engine.callbacks.base import Callback


class BalancingCallback(Callback):
    """Added by the engine when it has a balancer (:mod:`paddlepalm.balancing`).

    Every log row of the losses is followed by ``{"step", "balance": {"weights": {task: w},
    "grad_cosine": {"a|b": cos}, "grad_norm": {task: norm}}}`` (diagnostics when they were measured
    at that step, see ``TrainingArguments.diagnostics_steps``); ``paddlepalm report`` plots them.
    The balancer's state (loss history, learned weights, random order) is saved in every
    checkpoint, so a resumed run continues exactly.
    """

    state_key = "balancer"

    def __init__(self, balancer):
        self.balancer = balancer

    def on_step_end(self, loop, state, control, step) -> None:
        if getattr(loop, "diagnosed", False):
            control.should_log = True  # a diagnosed step is always logged

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        if "loss" not in logs:
            return
        record: Dict[str, Any] = {"weights": dict(getattr(loop, "last_weights", None) or {})}
        diagnostics = self.balancer.diagnostics()
        if getattr(loop, "diagnosed", False) and diagnostics is not None:
            record.update(diagnostics.as_record())
        loop.log({"step": logs["step"], "balance": record})

    def state_dict(self) -> Dict[str, Any]:
        return self.balancer.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.balancer.set_state_dict(state)
