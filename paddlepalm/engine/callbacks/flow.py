"""When to log: every ``print_steps`` steps and at the last step."""
from paddlepalm.engine.callbacks.base import Callback


class LogEvery(Callback):
    """Sets ``control.should_log`` every ``print_steps`` steps and at the last one (0: never)."""

    def __init__(self, print_steps: int = 50):
        self.print_steps = int(print_steps or 0)

    def on_step_end(self, loop, state, control, step) -> None:
        if self.print_steps and (state.global_step % self.print_steps == 0 or state.global_step == state.max_steps):
            control.should_log = True
