"""The training engine: task specs run by a fit loop over a train state, with callbacks and a strategy.

* :class:`TaskSpec` -- what a task is (readers, head, mix ratio, loss weight, aux, shared head);
* :class:`Engine` -- ``fit`` / ``evaluate`` / ``predict`` / ``save`` over one shared encoder;
* :class:`TrainingArguments` -- the one source of training defaults;
* :class:`FitLoop`, :class:`TrainState`, :class:`TrainerControl` -- the loop and its state;
* :class:`Callback` and the built-ins (:mod:`paddlepalm.engine.callbacks`);
* :class:`Strategy` -- :class:`SingleProcess` or :class:`DataParallel`.

See ``docs/architecture.md``.
"""
from paddlepalm.engine.args import TrainingArguments
from paddlepalm.engine.callbacks import Callback, CallbackList
from paddlepalm.engine.engine import Engine
from paddlepalm.engine.loop import FitLoop, StepOutput
from paddlepalm.engine.spec import TaskSpec
from paddlepalm.engine.state import TrainerControl, TrainState
from paddlepalm.engine.strategy import DataParallel, SingleProcess, Strategy, default_strategy

__all__ = ["Callback", "CallbackList", "DataParallel", "Engine", "FitLoop", "SingleProcess", "StepOutput",
           "Strategy", "TaskSpec", "TrainState", "TrainerControl", "TrainingArguments", "default_strategy"]
