"""Task sampling for multi-task training: which task's batch runs at each step.

Strategies (all deterministic given a seed):

* ``'mix_ratio'`` (PALM semantics, default): p_i proportional to ``mix_ratio_i``.
* ``'temperature'``: p_i proportional to ``size_i ** (1 / T)`` (T=1: proportional to data size;
  large T: uniform).
* ``'annealed'``: p_i proportional to ``size_i ** alpha`` with alpha falling from 1 to 0.2 over
  training (Stickland & Murray 2019, "annealed sampling").

The total number of steps follows PALM: the *main* task runs ``num_epochs`` epochs in
expectation, so ``total = main_steps / p_main``.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

STRATEGIES = ("mix_ratio", "temperature", "annealed")
STEP_MODES = ("sampled", "joint")


def mix_ratio_probs(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if (r < 0).any() or r.sum() <= 0:
        raise ValueError("mix ratios must be >= 0 with a positive sum, got %s" % list(ratios))
    return r / r.sum()


def temperature_probs(sizes: Sequence[int], temperature: float = 1.0) -> np.ndarray:
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    s = np.asarray(sizes, dtype=np.float64) ** (1.0 / temperature)
    return s / s.sum()


def annealed_alpha(progress: float) -> float:
    """alpha = 1 - 0.8 * progress, progress in [0, 1]."""
    return 1.0 - 0.8 * min(1.0, max(0.0, progress))


def annealed_probs(sizes: Sequence[int], progress: float) -> np.ndarray:
    s = np.asarray(sizes, dtype=np.float64) ** annealed_alpha(progress)
    return s / s.sum()


@dataclass
class TaskInfo:
    name: str
    num_examples: int
    batch_size: int
    steps_per_epoch: int
    mix_ratio: float = 1.0
    is_main: bool = False


class Sampler:
    """Draws the task(s) of each step; its state is saved with checkpoints for exact resume.

    ``step_mode='sampled'`` (PALM): one task per step, drawn by ``strategy``; the main task runs
    ``num_epochs`` epochs in expectation. ``step_mode='joint'``: every step takes one batch of
    every task -- or, with ``tasks_per_step=k``, of the main task and ``k - 1`` others drawn
    without replacement by ``strategy`` -- and the main task runs exactly ``num_epochs`` epochs.
    """

    def __init__(self, tasks: List[TaskInfo], strategy: str = "mix_ratio", num_epochs: float = 1.0,
                 temperature: float = 1.0, seed: int = 0, max_steps: Optional[int] = None,
                 step_mode: str = "sampled", tasks_per_step: Optional[int] = None):
        if strategy not in STRATEGIES:
            raise ValueError("unknown sampling strategy %r; expected one of %s"
                             % (strategy, ", ".join(STRATEGIES)))
        if step_mode not in STEP_MODES:
            raise ValueError("unknown step_mode %r; expected one of %s" % (step_mode, ", ".join(STEP_MODES)))
        if tasks_per_step is not None and not 1 <= int(tasks_per_step):
            raise ValueError("tasks_per_step must be >= 1, got %r" % (tasks_per_step,))
        self.step_mode = step_mode
        self.tasks_per_step = None if tasks_per_step is None or int(tasks_per_step) >= len(tasks) \
            else int(tasks_per_step)
        mains = [i for i, t in enumerate(tasks) if t.is_main]
        if len(mains) != 1:
            raise ValueError("exactly one main task is needed, got %d" % len(mains))
        self.tasks, self.strategy, self.temperature = tasks, strategy, temperature
        self.main = mains[0]
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.counts = [0] * len(tasks)
        self.last_task: Optional[int] = None  # the task of the latest step
        p_main = self.probs(0.0)[self.main] if step_mode == "sampled" else 1.0
        main_steps = num_epochs * tasks[self.main].steps_per_epoch
        self.total_steps = int(max_steps) if max_steps else max(1, int(round(main_steps / p_main)))

    def probs(self, progress: Optional[float] = None) -> np.ndarray:
        if progress is None:
            progress = self.step / max(1, getattr(self, "total_steps", 1))
        if self.strategy == "mix_ratio":
            return mix_ratio_probs([t.mix_ratio for t in self.tasks])
        sizes = [t.num_examples for t in self.tasks]
        if self.strategy == "temperature":
            return temperature_probs(sizes, self.temperature)
        return annealed_probs(sizes, progress)

    def next(self) -> int:
        p = self.probs()
        task = int(self.rng.choice(len(self.tasks), p=p)) if len(self.tasks) > 1 else 0
        self.counts[task] += 1
        self.step += 1
        self.last_task = task
        return task

    def next_tasks(self) -> List[int]:
        """The task indices of the next step (one in sampled mode)."""
        if self.step_mode == "sampled":
            return [self.next()]
        chosen = list(range(len(self.tasks)))
        if self.tasks_per_step is not None:
            others = [i for i in chosen if i != self.main]
            p = self.probs()[others]
            drawn = self.rng.choice(len(others), size=self.tasks_per_step - 1, replace=False, p=p / p.sum())
            chosen = sorted([self.main] + [others[int(j)] for j in drawn])
        for i in chosen:
            self.counts[i] += 1
        self.step += 1
        self.last_task = chosen[0]
        return chosen

    def step_share(self, progress: float) -> np.ndarray:
        """Expected share of steps each task runs in (sums to 1 in sampled mode)."""
        if self.step_mode == "sampled":
            return self.probs(progress)
        if self.tasks_per_step is None:
            return np.ones(len(self.tasks))
        share = np.zeros(len(self.tasks))
        others = [i for i in range(len(self.tasks)) if i != self.main]
        p = self.probs(progress)[others]
        share[others] = np.minimum(1.0, (self.tasks_per_step - 1) * p / p.sum())  # approximately
        share[self.main] = 1.0
        return share

    def plan(self) -> List[Dict[str, float]]:
        """Expected share, steps and epochs per task over the whole run."""
        steps = np.zeros(len(self.tasks))
        chunk = max(1, self.total_steps // 100)
        for start in range(0, self.total_steps, chunk):  # integrate (annealed changes over time)
            n = min(chunk, self.total_steps - start)
            steps += n * self.step_share(start / self.total_steps)
        rows = []
        for t, s in zip(self.tasks, steps):
            rows.append({"task": t.name, "examples": t.num_examples, "batch_size": t.batch_size,
                         "probability": float(s / self.total_steps), "steps": float(s),
                         "epochs": float(s / max(1, t.steps_per_epoch)), "main": t.is_main})
        return rows

    def format_plan(self) -> str:
        mode = "" if self.step_mode == "sampled" else ", step_mode=joint%s" % (
            "" if self.tasks_per_step is None else " (%d tasks per step)" % self.tasks_per_step)
        lines = ["sampling=%s%s, total steps=%d" % (self.strategy, mode, self.total_steps),
                 "%-16s %9s %6s %8s %9s %8s" % ("task", "examples", "batch", "prob", "steps", "epochs")]
        for r in self.plan():
            lines.append("%-16s %9d %6d %8.3f %9.0f %8.2f%s" % (
                r["task"][:16], r["examples"], r["batch_size"], r["probability"], r["steps"],
                r["epochs"], "  (main)" if r["main"] else ""))
        return "\n".join(lines)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "step": self.step, "counts": list(self.counts)}

    def set_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.step, self.counts = state["step"], list(state["counts"])
