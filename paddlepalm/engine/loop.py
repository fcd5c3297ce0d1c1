"""``FitLoop``: sample -> batch -> shard -> forward/backward -> accumulate -> optimizer step -> callbacks.

The loop owns only the mechanics of training steps over a :class:`TrainState`; logging,
evaluation, best model, early stopping and checkpoints are callbacks
(:mod:`paddlepalm.engine.callbacks`), multi-process concerns are the :class:`Strategy`'s.
"""
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from paddlepalm.engine.args import TrainingArguments
from paddlepalm.engine.callbacks.base import CallbackList
from paddlepalm.engine.network import MultiTaskNetwork
from paddlepalm.engine.sampling import Sampler
from paddlepalm.engine.spec import TaskSpec
from paddlepalm.engine.state import TrainerControl, TrainState
from paddlepalm.engine.strategy import Strategy

logger = logging.getLogger("paddlepalm")

STEP_SEED_MULTIPLIER = 1000003  # per-step Paddle seed: seed * this + step (dropout repeats on resume)


@dataclass
class StepOutput:
    """What one training step produced: the task that ran, its weighted loss (detached, this
    process's share) and the head's outputs."""

    task_index: int
    task: str
    loss: Any
    outputs: Dict[str, Any]


class FitLoop:
    """Runs training steps for ``tasks`` over ``network`` until ``state.max_steps``."""

    def __init__(self, engine, network: MultiTaskNetwork, tasks: Sequence[TaskSpec], sampler: Sampler,
                 optimizer_spec, args: TrainingArguments, strategy: Strategy, callbacks: CallbackList,
                 seed: int = 0, weight_decay: Optional[float] = None):
        self.engine = engine  # evaluate(), save(path), save_checkpoint() -- see Engine
        self.network, self.tasks, self.sampler = network, list(tasks), sampler
        self.optimizer_spec, self.weight_decay = optimizer_spec, weight_decay
        self.args, self.strategy, self.callbacks, self.seed = args, strategy, callbacks, seed
        self.state = TrainState(max_steps=sampler.total_steps, task_steps={t.name: 0 for t in tasks})
        self.control = TrainerControl()
        self.optimizer = None
        self.scaler = None
        self.amp: Optional[str] = None
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
        self._setup_amp(args.amp)

    def build_optimizer(self) -> None:
        if self.optimizer_spec is None:
            from paddlepalm.optimizer import AdamW

            self.optimizer_spec = AdamW()
            logger.info("no optimizer given: using AdamW(lr=5e-5, weight_decay=0.01)")
        steps = -(-self.sampler.total_steps // self.accumulate_steps)
        self.optimizer = self.optimizer_spec.build(self.network.named_parameters(),
                                                   self.network.backbone.config.num_hidden_layers, steps,
                                                   self.weight_decay)

    def _setup_amp(self, amp: Optional[str]) -> None:
        import paddle

        if amp in (None, False, "", "none", "fp32"):
            self.amp = None
            return
        if amp not in ("fp16", "bf16"):
            raise ValueError("amp must be None, 'fp16' or 'bf16', got %r" % amp)
        if not paddle.is_compiled_with_cuda() or paddle.device.get_device().startswith("cpu"):
            logger.warning("AMP (%s) needs a GPU; this run is on CPU, so it trains in fp32", amp)
            self.amp = None
            return
        self.amp = amp
        if amp == "fp16" and self.scaler is None:
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)

    def amp_context(self):
        import paddle

        if not self.amp:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, dtype="bfloat16" if self.amp == "bf16" else "float16", level="O1")

    # ------------------------------------------------------------------ data positions
    def iterators(self) -> list:
        if self._iterators is None:
            self._iterators = [t.reader.batcher.iterate(None) for t in self.tasks]
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
        self.state.task_steps = dict(zip([t.name for t in self.tasks], self.sampler.counts))

    # ------------------------------------------------------------------ one step
    def train_step(self, batch, task_index: int) -> Dict[str, Any]:
        """Forward + backward on one batch of one task (no optimizer step); the head's outputs."""
        t = self.tasks[task_index]
        self.network.train_task(t)
        with self.amp_context():
            outputs = self.network.forward(t, batch)
        self.backward(outputs["loss"] * (t.loss_weight / self.accumulate_steps * self.shard_weight))
        return outputs

    def backward(self, loss) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def optimizer_step(self) -> None:
        """Reduce gradients (data parallel), ``on_before_optimizer_step``, update, clear, schedule."""
        self.strategy.reduce_gradients(p for _, p in self.network.named_parameters())
        self.callbacks.call("on_before_optimizer_step", self, self.state, self.control)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.clear_grad(set_to_zero=False)  # heads not sampled get no update at all
        self.optimizer_spec.scheduler.step()

    def step(self) -> StepOutput:
        """One training step: seed, sample a task, take its batch, shard, train, maybe update."""
        import paddle

        s = self.state
        paddle.seed(self.strategy.step_seed(self.seed * STEP_SEED_MULTIPLIER + s.global_step))
        task_index = self.sampler.next()
        batch, self.shard_weight = self.strategy.shard(next(self.iterators()[task_index]))
        outputs = self.train_step(batch, task_index)
        loss = outputs["loss"].detach()
        s.global_step += 1
        self._sync_task_steps()
        self._pending.append((task_index, loss if self.shard_weight == 1.0 else loss * self.shard_weight))
        if s.global_step % self.accumulate_steps == 0 or s.global_step == s.max_steps:
            self.optimizer_step()
        return StepOutput(task_index, self.tasks[task_index].name, self._pending[-1][1], outputs)

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
                "stopped_early": s.stopped_early, "last_eval": s.history[-1]["eval"] if s.history else None}

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
