"""Periodic checkpoints (``ckpt.step<N>/``) and the final one."""
import os
from typing import Optional

from paddlepalm.engine.callbacks.base import Callback
from paddlepalm.engine.checkpoints import checkpoint_name
from paddlepalm.utils.atomic_dir import clean_stale_temp_dirs


class CheckpointCallback(Callback):
    """Saves every ``save_steps`` steps and at the end of a finished run (once per step); the
    engine keeps the newest ``keep_last``. Temporary folders of killed writers are removed at start."""

    def __init__(self, save_path: str, save_steps: Optional[int] = None):
        self.save_path, self.save_steps = save_path, save_steps

    def on_train_start(self, loop, state, control) -> None:
        if loop.strategy.is_main:
            clean_stale_temp_dirs(self.save_path)

    def on_step_end(self, loop, state, control, step) -> None:
        if self.save_steps and state.global_step % self.save_steps == 0:
            control.should_save = True

    def on_train_end(self, loop, state, control) -> None:
        if not loop.finished:
            return
        exists = os.path.isdir(os.path.join(self.save_path, checkpoint_name(state.global_step)))
        if loop.strategy.broadcast(not exists):  # rank 0 decides
            loop.save_checkpoint()
