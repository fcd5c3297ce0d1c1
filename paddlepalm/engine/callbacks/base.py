"""The callback protocol: hooks the fit loop calls, and a list that calls them in order.

Hook order in one step: the loop runs forward and backward; when the optimizer steps (every
``accumulate_steps`` batches) ``on_before_optimizer_step`` sees the (reduced) gradients in each
parameter's ``.grad``; then ``on_step_end`` (callbacks may set
``control.should_log / should_evaluate / should_save / should_stop``); then, as asked, the loop
logs (``on_log``), evaluates (``on_evaluate`` with the metrics) and saves a checkpoint
(``on_save`` with its path). ``on_train_start`` runs after setup and resume, ``on_train_end``
after the last step (``state.global_step == state.max_steps`` unless stopped). A callback's
``state_dict()`` is saved in every checkpoint and given back to ``load_state_dict`` on resume,
so a stateful callback continues exactly.
"""
from typing import Any, Dict, Iterable, List, Optional


class Callback:
    """Base class: override the hooks you need. ``loop`` is the running :class:`FitLoop`."""

    #: key of this callback's state in checkpoints (default: the class name)
    state_key: Optional[str] = None

    def on_train_start(self, loop, state, control) -> None:
        pass

    def on_before_optimizer_step(self, loop, state, control) -> None:
        """Gradients are complete (accumulated, reduced over ranks) and not yet applied."""

    def on_step_end(self, loop, state, control, step) -> None:
        """``step`` is a :class:`~paddlepalm.engine.loop.StepOutput` (task, loss tensor, outputs)."""

    def on_log(self, loop, state, logs: Dict[str, Any]) -> None:
        pass

    def on_evaluate(self, loop, state, control, metrics: Dict[str, Dict[str, float]]) -> None:
        pass

    def on_save(self, loop, state, path: str) -> None:
        pass

    def on_train_end(self, loop, state, control) -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


class CallbackList:
    """Callbacks in the order they were given; one call dispatches a hook to all of them."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks: List[Callback] = []
        for cb in callbacks:
            self.add(cb)

    def add(self, callback: Callback) -> None:
        if isinstance(callback, type):
            callback = callback()
        if not isinstance(callback, Callback):
            raise TypeError("a callback must be a paddlepalm.engine.Callback, got %r" % (callback,))
        self.callbacks.append(callback)

    def find(self, cls) -> Optional[Callback]:
        return next((cb for cb in self.callbacks if isinstance(cb, cls)), None)

    def _keys(self) -> List[str]:
        keys, seen = [], {}
        for cb in self.callbacks:
            key = cb.state_key or type(cb).__name__
            seen[key] = seen.get(key, 0) + 1
            keys.append(key if seen[key] == 1 else "%s#%d" % (key, seen[key]))
        return keys

    def state_dict(self) -> Dict[str, Any]:
        return {k: cb.state_dict() for k, cb in zip(self._keys(), self.callbacks) if cb.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for key, cb in zip(self._keys(), self.callbacks):
            if key in state:
                cb.load_state_dict(state[key])

    def call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
