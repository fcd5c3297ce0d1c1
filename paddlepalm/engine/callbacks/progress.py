"""Progress on the console: a tqdm bar, and PALM-style log lines."""
import logging
import sys
import time
from typing import Any, Dict, Optional

import numpy as np

from paddlepalm.engine.callbacks.base import Callback

logger = logging.getLogger("paddlepalm")


class ProgressBar(Callback):
    """A tqdm bar with each task's latest loss and step count (on a terminal, or ``progress=True``)."""

    def __init__(self, progress: Optional[bool] = None):
        self.progress = progress
        self.bar = None

    def on_train_start(self, loop, state, control) -> None:
        show = sys.stderr.isatty() if self.progress is None else self.progress
        if show and loop.strategy.is_main:
            from tqdm import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        if self.bar is not None and "loss" in logs:
            self.bar.set_postfix({**{k: "%.3f" % v for k, v in logs["loss"].items()},
                                  "steps": "/".join(str(c) for c in state.task_steps.values())})

    def on_step_end(self, loop, state, control, step) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_train_end(self, loop, state, control) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleLogger(Callback):
    """PALM's console lines: the sampling plan, ``step N/T (epoch E), loss: L, speed: S steps/s``
    and ``eval step N: task.metric=value, ...`` (main process only)."""

    def __init__(self):
        self.last = time.time()
        self.last_step = 0

    def on_train_start(self, loop, state, control) -> None:
        plan = loop.sampler.format_plan()
        logger.info("training plan:\n%s", plan)
        if not logger.isEnabledFor(logging.INFO) and loop.strategy.is_main:
            print("training plan:\n" + plan)
        self.last, self.last_step = time.time(), state.global_step

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        if not loop.strategy.is_main:
            return
        if "eval" in logs:
            print("eval step %d: %s" % (logs["step"], ", ".join(
                "%s.%s=%.4f" % (task, k, v) for task, m in logs["eval"].items() for k, v in m.items())))
        elif "loss" in logs:
            now = time.time()
            speed = (state.global_step - self.last_step) / max(1e-9, now - self.last)
            self.last, self.last_step = now, state.global_step
            losses = list(logs["loss"].values())
            main = loop.tasks[loop.sampler.main]
            print("step %d/%d (epoch %d), loss: %.3f, speed: %.2f steps/s" % (
                state.global_step, state.max_steps, main.reader.batcher.epoch,
                float(np.mean(losses)) if losses else float("nan"), speed))
