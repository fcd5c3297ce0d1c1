"""Periodic evaluation, the best model by an objective, and early stopping."""
import json
import logging
import os
from typing import Dict, Mapping, Optional, Sequence, Union

from paddlepalm.engine.callbacks.base import Callback

logger = logging.getLogger("paddlepalm")

Metrics = Dict[str, Dict[str, float]]


def resolve_objective(objective, tasks: Sequence, main_task: str):
    """``'auto'`` -> the main task's first metric (``None`` when it has no dev reader); other
    objectives are checked against the metric names the heads report (``ValueError`` naming it)."""
    by_name = {t.name: t for t in tasks}
    if objective == "auto":
        main = by_name[main_task]
        names = getattr(main.head, "metric_names", ())
        return "%s.%s" % (main.name, names[0]) if names and main.dev_reader is not None else None
    if objective is None:
        return None
    weights = {objective: 1.0} if isinstance(objective, str) else dict(objective)
    for key in weights:
        task, _, metric = key.partition(".")
        if task not in by_name:
            raise ValueError("objective %r: no task %r; tasks: %s" % (key, task, ", ".join(by_name)))
        names = getattr(by_name[task].head, "metric_names", ())
        if names and metric not in names:
            raise ValueError("objective %r: task %r reports %s, not %r" % (key, task, ", ".join(names), metric))
    return objective


def objective_score(objective: Union[None, str, Mapping[str, float]], metrics: Metrics) -> Optional[float]:
    """``'task.metric'`` or ``{'task.metric': weight, ...}`` -> weighted sum (None without objective)."""
    if objective is None:
        return None
    weights = {objective: 1.0} if isinstance(objective, str) else dict(objective)
    total = 0.0
    for key, w in weights.items():
        task, _, metric = key.partition(".")
        if task not in metrics or metric not in metrics[task]:
            raise KeyError("objective %r: task %r has metrics %s" % (key, task, sorted(metrics.get(task, {}))))
        total += float(w) * float(metrics[task][metric])
    return total


class EvaluationCallback(Callback):
    """Evaluates every ``eval_steps`` steps (and once at the end, unless just done or stopped
    early); keeps the best model in ``<save_path>/best`` by ``objective``; stops after
    ``patience`` evaluations without improvement."""

    def __init__(self, eval_steps: Optional[int] = None, objective=None, patience: Optional[int] = None,
                 save_path: Optional[str] = None, final: bool = True):
        self.eval_steps, self.objective, self.patience = eval_steps, objective, patience
        self.save_path, self.final = save_path, final

    def on_step_end(self, loop, state, control, step) -> None:
        if self.eval_steps and state.global_step % self.eval_steps == 0:
            control.should_evaluate = True

    def on_evaluate(self, loop, state, control, metrics: Metrics) -> None:
        score = objective_score(self.objective, metrics) if self.objective else None
        row = {"step": state.global_step, "eval": metrics, "score": score}
        state.history.append(row)
        loop.log(row)
        logger.info("eval at step %d: %s", state.global_step, json.dumps(metrics))
        if score is None:
            return
        if state.best_score is None or score > state.best_score:
            state.best_score, state.bad_evals = score, 0
            if self.save_path:
                loop.engine.save(os.path.join(self.save_path, "best"))
            return
        state.bad_evals += 1
        if self.patience is not None and state.bad_evals >= self.patience:
            control.should_stop = True
            state.stopped_early = True

    def on_train_end(self, loop, state, control) -> None:
        just_done = bool(self.eval_steps) and state.global_step % self.eval_steps == 0
        if self.final and loop.finished and not state.stopped_early and not just_done:
            loop.evaluate()
