"""Log rows to files: ``metrics.jsonl`` (read by ``paddlepalm report``) and VisualDL."""
import json
import os
from typing import Any, Dict, Optional

from paddlepalm.engine.callbacks.base import Callback


class JsonlLogger(Callback):
    """Appends every log row (losses, evaluations) as one JSON line to ``path``.

    On resume, rows of steps after the resume point (written by the interrupted run before it
    died) are dropped first, so every step appears once.
    """

    def __init__(self, path: Optional[str]):
        self.path = path

    def on_train_start(self, loop, state, control) -> None:
        if self.path and loop.strategy.is_main and state.global_step > 0 and os.path.isfile(self.path):
            _drop_rows_after(self.path, state.global_step)

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        if not self.path or not loop.strategy.is_main:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(logs, default=float) + "\n")


def _drop_rows_after(path: str, step: int) -> None:
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            row_step = json.loads(line).get("step", 0)
        except ValueError:
            continue  # a line cut by the kill
        if row_step <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)
    os.replace(tmp, path)


class VisualDLLogger(Callback):
    """Mirrors losses and metrics to VisualDL when it is installed (``visualdl --logdir <dir>``)."""

    def __init__(self, log_dir: Optional[str]):
        self.log_dir = log_dir
        self.writer = None

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        if not self.log_dir or not loop.strategy.is_main:
            return
        if self.writer is None:
            try:
                from visualdl import LogWriter
            except ImportError:
                self.log_dir = None
                return
            self.writer = LogWriter(logdir=self.log_dir)
        for task, value in (logs.get("loss") or {}).items():
            self.writer.add_scalar("loss/" + task, value, logs["step"])
        for task, metrics in (logs.get("eval") or {}).items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar("eval/%s/%s" % (task, name), value, logs["step"])
