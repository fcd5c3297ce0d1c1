"""``FitLoop``: sample -> batch -> shard -> forward/backward -> accumulate -> optimizer step -> callbacks.

The loop owns only the mechanics of training steps over a :class:`TrainState`; logging,
evaluation, best model, early stopping and checkpoints are callbacks
(:mod:`paddlepalm.engine.callbacks`), multi-process concerns are the :class:`Strategy`'s.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from paddlepalm.engine.args import TrainingArguments
from paddlepalm.engine.callbacks.base import CallbackList
from paddlepalm.engine.network import MultiTaskNetwork
from paddlepalm.engine.precision import MixedPrecision
from paddlepalm.engine.sampling import Sampler
from paddlepalm.engine.spec import TaskSpec
from paddlepalm.engine.state import TrainerControl, TrainState
from paddlepalm.engine.strategy import Strategy

logger = logging.getLogger("paddlepalm")

STEP_SEED_MULTIPLIER = 1000003  # per-step Paddle seed: seed * this + step (dropout repeats on resume)


@dataclass
class StepOutput:
    """What one training step produced: the tasks that ran, each one's weighted loss (detached,
    this process's share) and head outputs. ``task`` / ``loss`` / ``outputs`` are the first's."""

    task_index: int
    task: str
    loss: Any
    outputs: Dict[str, Any]
    losses: Dict[str, Any] = field(default_factory=dict)


class FitLoop:
    """Runs training steps for ``tasks`` over ``network`` until ``state.max_steps``."""

    def __init__(self, engine, network: MultiTaskNetwork, tasks: Sequence[TaskSpec], sampler: Sampler,
                 optimizer_spec, args: TrainingArguments, strategy: Strategy, callbacks: CallbackList,
                 seed: int = 0, weight_decay: Optional[float] = None, units: Optional[List[List[int]]] = None,
                 balancer=None, distiller=None):
        self.engine = engine  # evaluate(), save(path), save_checkpoint() -- see Engine
        self.network, self.tasks, self.sampler = network, list(tasks), sampler
        # the sampler draws units: one task, or tasks sharing one reader (one encoder pass)
        self.units = units or [[i] for i in range(len(self.tasks))]
        self.balancer = balancer  # None: the weighted sum of the task losses (loss_weight)
        self.distiller = distiller  # None, or adds a teacher's loss terms (paddlepalm.distill)
        self.distill_parts: Dict[str, Dict[str, float]] = {}  # task -> its distillation loss parts, last step
        self.last_tasks: List[str] = []
        self.optimizer_spec, self.weight_decay = optimizer_spec, weight_decay
        self.args, self.strategy, self.callbacks, self.seed = args, strategy, callbacks, seed
        self.state = TrainState(max_steps=sampler.total_steps, task_steps={t.name: 0 for t in tasks})
        self.control = TrainerControl()
        self.optimizer = None
        self.precision = MixedPrecision()
        self.accumulate_steps = 1
        self.shard_weight = 1.0  # this process's share of the global batch (data parallel)
        self._iterators: Optional[list] = None
        self._pending: List = []  # (task index, loss tensor) since the last log row
        self.start_time = time.time()

    # ------------------------------------------------------------------ setup
    def configure(self, args: TrainingArguments) -> None:
        """Apply the arguments of a (possibly repeated) ``run``: steps, accumulation, AMP."""
        self.args = args
        self.accumulate_steps = max(1, int(args.accumulate_steps))
        if args.max_steps:
            self.sampler.total_steps = int(args.max_steps)
        self.state.max_steps = self.sampler.total_steps
        self.precision.configure(args.amp)

    def build_optimizer(self) -> None:
        if self.optimizer_spec is None:
            from paddlepalm.optimizer import AdamW

            self.optimizer_spec = AdamW()
            logger.info("no optimizer given: using AdamW(lr=5e-5, weight_decay=0.01)")
        steps = -(-self.sampler.total_steps // self.accumulate_steps)
        self.optimizer = self.optimizer_spec.build(self.network.named_parameters(),
                                                   self.network.backbone.config.num_hidden_layers, steps,
                                                   self.weight_decay)

    @property
    def amp(self) -> Optional[str]:
        return self.precision.amp

    def amp_context(self):
        return self.precision.context()

    # ------------------------------------------------------------------ data positions
    def iterators(self) -> list:
        """One batch iterator per unit (tasks sharing a reader share its iterator)."""
        if self._iterators is None:
            self._iterators = [self.tasks[unit[0]].reader.batcher.iterate(None) for unit in self.units]
        return self._iterators

    def data_positions(self) -> Dict[str, Any]:
        """Sampler and reader positions (what decides the next batches)."""
        return {"sampler": self.sampler.state_dict(), "readers": {t.name: t.reader.state_dict() for t in self.tasks}}

    def set_data_positions(self, positions: Dict[str, Any]) -> None:
        self.sampler.set_state_dict(positions["sampler"])
        for t in self.tasks:
            t.reader.set_state_dict(positions["readers"][t.name])
        self._iterators = None
        self._sync_task_steps()

    def _sync_task_steps(self) -> None:
        self.state.task_steps = {self.tasks[i].name: count for unit, count in zip(self.units, self.sampler.counts)
                                 for i in unit}

    # ------------------------------------------------------------------ one step
    def train_step(self, batch, task_index: int) -> Dict[str, Any]:
        """Forward + backward on one batch of one task (no optimizer step); the head's outputs."""
        unit = next(u for u in self.units if task_index in u)
        return self.train_unit(batch, unit)[task_index]

    def train_unit(self, batch, unit: Sequence[int]) -> Dict[int, Dict[str, Any]]:
        """Forward (one encoder pass for the unit's tasks) + backward; outputs per task index."""
        outputs = self.forward_unit(batch, unit)
        self.backward_losses({i: (out["loss"], self.shard_weight) for i, out in outputs.items()})
        return outputs

    def forward_unit(self, batch, unit: Sequence[int]) -> Dict[int, Dict[str, Any]]:
        tasks = [self.tasks[i] for i in unit]
        for t in tasks:
            self.network.train_task(t)
        options, transform = None, None
        if self.distiller is not None:
            options = self.distiller.encoder_kwargs([t.name for t in tasks])
            transform = self._distilled
        with self.amp_context():
            return dict(zip(unit, self.network.forward_shared(tasks, batch, options, transform)))

    def _distilled(self, task, tensors, outputs, encoded):
        """The task's loss with the distiller's terms (teacher outputs, matches) mixed in."""
        if self.distiller.distills(task.name):
            outputs = dict(outputs)
            outputs["loss"], self.distill_parts[task.name] = self.distiller.loss(
                task.name, tensors, outputs, encoded, outputs.get("loss"))
        return outputs

    def backward_losses(self, losses: Dict[int, Any]) -> None:
        """``{task index: (loss, shard weight)}`` -> gradients: the balancer's combination, or
        the sum of ``loss * loss_weight * shard weight / accumulate_steps``."""
        if self.balancer is not None:
            self.balancer_backward(losses)
            return
        terms = [loss * (self.tasks[i].loss_weight / self.accumulate_steps * weight) for i, (loss, weight) in
                 losses.items()]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        self.backward(total)

    def balancer_backward(self, losses: Dict[int, Any]) -> None:
        """Hand the step's task losses to the balancer, which runs the backward pass(es)."""
        s = self.state
        named = {self.tasks[i].name: loss * weight for i, (loss, weight) in losses.items()}
        shared = [p for p in self.network.backbone.parameters() if not p.stop_gradient]
        task_params = {self.tasks[i].name: [p for p in self.tasks[i].head.parameters() if not p.stop_gradient]
                       for i in losses}
        step = s.global_step + 1  # the step being trained
        every = self.args.diagnostics_steps
        self.diagnosed = bool(every) and step % every == 0
        self.last_weights = self.balancer.combine(
            named, shared, task_params, scale=self.precision.loss_scale / self.accumulate_steps,
            sync=step % self.accumulate_steps == 0 or step == s.max_steps, diagnose=self.diagnosed)

    def backward(self, loss) -> None:
        self.precision.backward(loss)

    def optimizer_step(self) -> None:
        """Reduce gradients (data parallel), ``on_before_optimizer_step``, update, clear, schedule."""
        if not getattr(self.balancer, "reduces_gradients", False):  # per-task balancers reduce their own
            self.strategy.reduce_gradients(p for _, p in self.network.named_parameters())
        self.callbacks.call("on_before_optimizer_step", self, self.state, self.control)
        self.precision.step(self.optimizer)
        self.optimizer.clear_grad(set_to_zero=False)  # heads not sampled get no update at all
        self.optimizer_spec.scheduler.step()

    def step(self) -> StepOutput:
        """One training step: seed, draw the unit(s), take their batches, shard, train, maybe update."""
        import paddle

        s = self.state
        paddle.seed(self.strategy.step_seed(self.seed * STEP_SEED_MULTIPLIER + s.global_step))
        losses, outputs = {}, {}
        self.distill_parts = {}  # this step's tasks only
        for u in self.sampler.next_tasks():
            batch, self.shard_weight = self.strategy.shard(next(self.iterators()[u]))
            unit_out = self.forward_unit(batch, self.units[u])
            outputs.update(unit_out)
            losses.update({i: (out["loss"], self.shard_weight) for i, out in unit_out.items()})
        self.backward_losses(losses)
        s.global_step += 1
        self._sync_task_steps()
        detached = {}
        for i, (loss, weight) in losses.items():
            loss = loss.detach()
            detached[self.tasks[i].name] = loss if weight == 1.0 else loss * weight
            self._pending.append((i, detached[self.tasks[i].name]))
        self.last_tasks = list(detached)
        if s.global_step % self.accumulate_steps == 0 or s.global_step == s.max_steps:
            self.optimizer_step()
        first = next(iter(outputs))
        return StepOutput(first, self.tasks[first].name, detached[self.tasks[first].name], outputs[first], detached)

    # ------------------------------------------------------------------ the run
    def run(self) -> Dict[str, Any]:
        """Train from ``state.global_step`` to ``state.max_steps`` (or until stopped)."""
        s, control = self.state, self.control
        control.should_stop = False
        self.start_time = time.time()
        self.callbacks.call("on_train_start", self, s, control)
        steps_this_call = 0
        while s.global_step < s.max_steps and not control.should_stop:
            out = self.step()
            steps_this_call += 1
            self.callbacks.call("on_step_end", self, s, control, out)
            self._act_on(control)
            if self.args.stop_after is not None and steps_this_call >= self.args.stop_after:
                break
        self.shard_weight = 1.0  # a later direct train_step uses its whole batch
        s.stopped_early = s.stopped_early or (control.should_stop and s.global_step < s.max_steps)
        self.callbacks.call("on_train_end", self, s, control)
        return self.summary()

    @property
    def finished(self) -> bool:
        """True when the run reached its last step or was stopped (not merely interrupted)."""
        return self.state.global_step >= self.state.max_steps or self.state.stopped_early

    def _act_on(self, control: TrainerControl) -> None:
        if control.should_log:
            self.callbacks.call("on_log", self, self.state, self.step_log())
        if control.should_evaluate:
            self.evaluate()
        if not control.should_stop:
            if getattr(self.strategy, "sync_check_steps", 0) and \
                    self.state.global_step % self.strategy.sync_check_steps == 0:
                self.strategy.check_in_sync(self)
            if control.should_save:
                self.save_checkpoint()
        control.reset_step()

    def step_log(self) -> Dict[str, Any]:
        """A log row: mean loss per task since the last row (one host sync), LR, steps per task."""
        losses = pending_losses_to_floats(self.strategy, self.tasks, self._pending)
        self._pending.clear()
        return {"step": self.state.global_step, "loss": losses, "lr": self.optimizer.get_lr(),
                "task_steps": dict(self.state.task_steps), "time": time.time() - self.start_time}

    def log(self, row: Dict[str, Any]) -> None:
        """Send a row (e.g. an evaluation) to every callback's ``on_log``."""
        self.callbacks.call("on_log", self, self.state, row)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Evaluate every task with a dev reader and tell the callbacks."""
        metrics = self.engine.evaluate()
        if metrics:
            self.callbacks.call("on_evaluate", self, self.state, self.control, metrics)
        return metrics

    def save_checkpoint(self) -> str:
        path = self.engine.save_checkpoint()
        self.callbacks.call("on_save", self, self.state, path)
        return path

    def summary(self) -> Dict[str, Any]:
        s = self.state
        return {"steps": s.global_step, "task_steps": dict(s.task_steps),
                "wall_seconds": time.time() - self.start_time, "best_score": s.best_score,
                "stopped_early": s.stopped_early, "last_eval": s.history[-1]["eval"] if s.history else None,
                "threads": getattr(self, "threads", None)}

    # ------------------------------------------------------------------ checkpoint state
    def training_state(self) -> Dict[str, Any]:
        """Everything but weights and optimizer moments that resuming needs (JSON)."""
        s = self.state
        return {"global_step": s.global_step, **self.data_positions(),
                "scheduler": self.optimizer_spec.scheduler.state_dict(), "best_score": s.best_score,
                "bad_evals": s.bad_evals, "seed": self.seed, "train_state": s.state_dict(),
                "callbacks": self.callbacks.state_dict()}

    def load_training_state(self, state: Dict[str, Any]) -> None:
        """Continue the checkpointed run exactly: its schedule, positions, state, callbacks and seed."""
        if "seed" in state and int(state["seed"]) != self.seed:
            logger.warning("resuming a run trained with seed %s (this engine has seed %s): keeping the run's "
                           "seed so the remaining steps are the ones it would have taken", state["seed"], self.seed)
            self.seed = int(state["seed"])
        self.optimizer_spec.scheduler.set_state_dict(state["scheduler"])
        self.state.load_state_dict(state.get("train_state") or {"global_step": state["global_step"],
                                                                 "best_score": state["best_score"],
                                                                 "bad_evals": state["bad_evals"]})
        self.set_data_positions(state)
        self.callbacks.load_state_dict(state.get("callbacks", {}))


def pending_losses_to_floats(strategy: Strategy, tasks: Sequence[TaskSpec],
                             pending: List) -> Dict[str, float]:
    """``[(task_index, loss tensor), ...]`` -> mean loss per task name (one host sync)."""
    import numpy as np

    sums: Dict[str, List[float]] = {}
    for task_index, loss in strategy.average_losses(pending):
        sums.setdefault(tasks[task_index].name, []).append(float(loss))
    return {k: float(np.mean(v)) for k, v in sums.items()}
