"""Value schedules for distillation: the temperature and the hard/soft loss weights.

A :class:`Schedule` holds the step it was last told (``on_step(step, total_steps)``) and gives
``value``; its ``state_dict`` is saved with training checkpoints so a resumed run continues the
schedule exactly. Shapes (``kind``) are registered in :data:`SCHEDULE_KINDS`.
"""
import math
from typing import Any, Callable, Dict, Optional, Union

# progress in [0, 1] -> fraction of the way from ``start`` to ``end``
SCHEDULE_KINDS: Dict[str, Callable[[float], float]] = {
    "constant": lambda progress: 0.0,
    "linear": lambda progress: progress,
    "cosine": lambda progress: 0.5 * (1.0 - math.cos(math.pi * progress)),
}

ScheduleLike = Union["Schedule", float, int, Dict[str, Any]]


class Schedule:
    """``start`` at step 0 moving to ``end`` at ``total_steps`` along ``kind``.

    ``kind='constant'`` keeps ``start`` (``end`` unused). ``warmup_steps`` (optional) holds
    ``start`` for that many steps before the move begins.
    """

    def __init__(self, start: float, end: Optional[float] = None, kind: str = "constant",
                 warmup_steps: int = 0, name: str = "schedule"):
        if kind not in SCHEDULE_KINDS:
            raise ValueError("%s: unknown schedule kind %r; expected one of %s"
                             % (name, kind, ", ".join(sorted(SCHEDULE_KINDS))))
        if kind != "constant" and end is None:
            raise ValueError("%s: a %r schedule needs 'end'" % (name, kind))
        self.start = float(start)
        self.end = float(start if end is None else end)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.name = name
        self.step = 0
        self.total_steps = 0

    def on_step(self, step: int, total_steps: Optional[int] = None) -> None:
        """Tell the schedule the current optimizer step (0-based) and the run's length."""
        self.step = int(step)
        if total_steps is not None:
            self.total_steps = int(total_steps)

    def value_at(self, step: int, total_steps: int) -> float:
        span = total_steps - self.warmup_steps
        progress = 0.0 if span <= 0 else min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self.start + (self.end - self.start) * SCHEDULE_KINDS[self.kind](progress)

    @property
    def value(self) -> float:
        return self.value_at(self.step, self.total_steps)

    def state_dict(self) -> Dict[str, Any]:
        return {"step": self.step, "total_steps": self.total_steps, "start": self.start,
                "end": self.end, "kind": self.kind, "warmup_steps": self.warmup_steps}

    def set_state_dict(self, state: Dict[str, Any]) -> None:
        self.step, self.total_steps = int(state["step"]), int(state["total_steps"])

    def __repr__(self):
        if self.kind == "constant":
            return "Schedule(%s=%g)" % (self.name, self.start)
        return "Schedule(%s: %g -> %g, %s)" % (self.name, self.start, self.end, self.kind)

    @classmethod
    def build(cls, spec: ScheduleLike, name: str) -> "Schedule":
        """A Schedule from a number (constant), a mapping ``{start, end, kind, warmup_steps}``
        or a Schedule; ``name`` (the config key) appears in error messages."""
        if isinstance(spec, Schedule):
            return spec
        if isinstance(spec, bool) or not isinstance(spec, (int, float, dict)):
            raise ValueError("%s: expected a number or a mapping {start, end, kind}, got %r" % (name, spec))
        if isinstance(spec, dict):
            unknown = set(spec) - {"start", "end", "kind", "warmup_steps"}
            if unknown:
                raise ValueError("%s: unknown key(s) %s; expected start, end, kind, warmup_steps"
                                 % (name, ", ".join(sorted(unknown))))
            if "start" not in spec:
                raise ValueError("%s: missing 'start'" % name)
            kind = spec.get("kind", "linear" if "end" in spec else "constant")
            return cls(spec["start"], spec.get("end"), kind, spec.get("warmup_steps", 0), name=name)
        return cls(spec, name=name)
