"""A distillation run is a training run with a teacher: wire a :class:`Distillation` into an engine.

::

    from paddlepalm.distill import build_distillation, attach
    dist = build_distillation({"teacher": "outputs/snips/best", "student": {"layers": [0, 2, 4]}},
                              tasks=["intent", "slot"], readers={t.name: t.reader for t in engine.tasks})
    callback = attach(engine, dist)          # the engine now trains the student
    engine.fit(optimizer=..., num_epochs=2, callbacks=[callback])
    engine.save("outputs/student")           # an ordinary paddlepalm model: palm.load, predict, export

Sampling, step modes, schedules, evaluation, checkpoints, resume and data parallel are the
engine's; the distiller only adds loss terms to each distilled task's step.
"""
from typing import Any, Dict

import numpy as np

from paddlepalm.engine import Callback

SCHEDULED = ("temperature", "soft_weight", "hard_weight")  # the same for every task of a step


def merge_parts(by_task: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """One ``distill`` log row from the step's loss parts per task: one task's parts as they are;
    several tasks' (a step over several tasks, e.g. shared-input views) as ``<task>.<part>``, the
    scheduled values (temperature, weights) once."""
    if len(by_task) == 1:
        return {k: float(v) for k, v in next(iter(by_task.values())).items()}
    row: Dict[str, float] = {}
    for task, parts in by_task.items():
        for k, v in parts.items():
            row[k if k in SCHEDULED else "%s.%s" % (task, k)] = float(v)
    return row


class DistillationCallback(Callback):
    """Advances the distiller's schedules every step, logs its loss parts, and keeps its state
    (schedules, projections) in every checkpoint so a resumed distillation continues exactly."""

    state_key = "distiller"

    def __init__(self, distiller):
        self.distiller = distiller

    def on_train_start(self, loop, state, control) -> None:
        self.distiller.on_step(state.global_step, state.max_steps)

    def on_step_end(self, loop, state, control, step) -> None:
        self.distiller.on_step(state.global_step, state.max_steps)

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        parts = getattr(loop, "distill_parts", None)
        if "loss" in logs and parts:
            loop.log({"step": logs["step"], "distill": merge_parts(parts)})

    def state_dict(self) -> Dict[str, Any]:
        state = self.distiller.state_dict()
        return dict(state, projections={k: np.asarray(v).tolist() for k, v in state["projections"].items()})

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        projections = {k: np.asarray(v, dtype=np.float32) for k, v in state.get("projections", {}).items()}
        self.distiller.set_state_dict(dict(state, projections=projections))


def attach(engine, distillation) -> DistillationCallback:
    """Make ``engine`` train ``distillation``'s student: the student encoder becomes the engine's
    backbone, every distilled task gets its student head, readers register with the student.
    Returns the callback to pass to ``fit``. The teacher is never trained (frozen, eval mode)."""
    engine.backbone = distillation.student
    for t in engine.tasks:
        if t.name in distillation.heads:
            t.head = distillation.heads[t.name]
        if hasattr(t, "backbone"):  # PALM Trainer: its bound backbone follows the engine's
            t.backbone = distillation.student
        for reader in (t.reader, t.dev_reader, t.predict_reader):
            if reader is not None:
                reader.register_with(distillation.student)
    engine.distiller = distillation.distiller
    engine.loop = None  # the next plan()/fit() builds the loop over the student
    return DistillationCallback(distillation.distiller)
