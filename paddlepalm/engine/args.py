"""``TrainingArguments``: the one source of training defaults.

``Engine.fit(...)``, PALM's ``MultiHeadTrainer.train(...)``, the YAML schema
(:mod:`paddlepalm.config.schema`) and the generated ``docs/config.md`` all read their defaults
from this dataclass, so a run means the same thing whichever way it is started.
"""
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Mapping, Optional, Union

Objective = Union[None, str, Mapping[str, float]]
AUTO = "auto"


@dataclass
class TrainingArguments:
    """How long and how to train, what to log, evaluate and save.

    ``num_epochs``: epochs of the main task (the total number of steps follows from its sampling
    share, PALM semantics); ``max_steps`` overrides it. ``eval_steps``: evaluate every task with a
    dev reader every N steps (``None``: once, at the end). ``objective``: what ``best/`` maximises,
    ``'task.metric'`` or ``{'task.metric': weight}``; ``'auto'`` is the main task's first metric
    (when it has a dev reader), ``None`` keeps no best model. ``patience``: stop after this many
    evaluations without a better objective. ``save_steps``: checkpoint every N steps (``None``: at
    the end only); ``keep_last``: checkpoints kept (``None``: all). ``print_steps``: log every N
    steps (0: never). ``resume``: a checkpoint folder or ``'latest'``; ``resume_strict`` raises
    when ``'latest'`` finds none (otherwise it logs and starts fresh). ``stop_after``: stop after
    this many steps in this call, without the final save (time-boxed runs, tests).
    ``diagnostics_steps``: with a balancer, measure the cosine similarity of the task gradients on
    the shared encoder every N steps and log it with each task's effective weight (0: never;
    weighting methods pay one backward per task on those steps, gradient surgery nothing).
    """

    num_epochs: float = 3.0
    max_steps: Optional[int] = None
    main_task: Optional[str] = None
    accumulate_steps: int = 1
    amp: Optional[str] = None
    eval_steps: Optional[int] = None
    objective: Objective = AUTO
    patience: Optional[int] = None
    save_path: Optional[str] = None
    save_steps: Optional[int] = None
    save_type: str = "ckpt"
    keep_last: Optional[int] = 2
    print_steps: int = 50
    log_path: Optional[str] = None
    progress: Optional[bool] = None
    resume: Optional[str] = None
    resume_strict: bool = False
    stop_after: Optional[int] = None
    diagnostics_steps: Optional[int] = 50
    extra: Dict[str, Any] = field(default_factory=dict)

    def updated(self, **changes: Any) -> "TrainingArguments":
        """A copy with ``changes``; unknown names raise ``TypeError`` naming them."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError("unknown training argument(s): %s; known: %s" % (", ".join(unknown),
                                                                            ", ".join(sorted(known))))
        return replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


DEFAULTS = TrainingArguments()


def default(name: str) -> Any:
    """The default of one training argument (used by the YAML schema)."""
    return getattr(DEFAULTS, name)
