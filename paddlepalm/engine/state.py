"""``TrainState`` (where training is) and ``TrainerControl`` (what callbacks ask the loop to do)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class TrainState:
    """Progress of a run; saved in every checkpoint, restored on resume.

    ``task_steps`` counts the steps each task ran; ``history`` holds one row per evaluation
    (``{'step', 'eval', 'score'}``).
    """

    global_step: int = 0
    max_steps: int = 0
    task_steps: Dict[str, int] = field(default_factory=dict)
    best_score: Optional[float] = None
    bad_evals: int = 0
    stopped_early: bool = False
    history: List[Dict[str, Any]] = field(default_factory=list)

    def state_dict(self) -> Dict[str, Any]:
        return {"global_step": self.global_step, "task_steps": dict(self.task_steps),
                "best_score": self.best_score, "bad_evals": self.bad_evals,
                "stopped_early": self.stopped_early}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.global_step = int(state["global_step"])
        self.task_steps = dict(state.get("task_steps", self.task_steps))
        self.best_score = state.get("best_score")
        self.bad_evals = int(state.get("bad_evals", 0))
        self.stopped_early = bool(state.get("stopped_early", False))


@dataclass
class TrainerControl:
    """Flags callbacks set in their hooks; the loop acts on them after the hook returns.

    ``should_evaluate`` / ``should_save`` / ``should_log`` are reset after every step;
    ``should_stop`` ends training after the current step (no further periodic save).
    """

    should_stop: bool = False
    should_evaluate: bool = False
    should_save: bool = False
    should_log: bool = False

    def reset_step(self) -> None:
        self.should_evaluate = self.should_save = self.should_log = False
