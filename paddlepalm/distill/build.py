"""From a config's ``distill:`` section (validated settings) to the objects a run needs."""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence

from paddlepalm.distill.distiller import Distiller
from paddlepalm.distill.student import build_heads, build_student, check_label_map, check_tokenizer
from paddlepalm.distill.teacher import Teacher
from paddlepalm.errors import ConfigError

DEFAULTS = {"student": {"layers": None, "config": None, "overrides": {}, "copy_pooler": True, "heads": "copy"},
            "temperature": 1.0, "soft_weight": 0.5, "hard_weight": 0.5, "kd_loss": "kl", "scale_by_t2": True,
            "task_weights": {}, "matches": [], "cache": False}


@dataclasses.dataclass
class Distillation:
    """What a distillation run trains (``student`` + ``heads``) and the ``distiller`` to call."""

    teacher: Teacher
    student: Any  # the student encoder
    heads: Dict[str, Any]  # task -> student head
    distiller: Distiller


def build_distillation(section: Mapping[str, Any], tasks: Sequence[str],
                       readers: Optional[Mapping[str, Any]] = None, key: str = "distill") -> Distillation:
    """Teacher, student encoder and heads, and the Distiller, from a ``distill:`` mapping.

    ``tasks`` are the run's task names; those in the section's ``tasks`` (default: all) are
    distilled, and ``heads`` holds the student heads of exactly those; ``readers`` (task -> training
    reader) are checked against the teacher (same vocabulary, same label maps) and let the
    distiller cache teacher outputs. Missing keys take :data:`DEFAULTS`.
    """
    s = {k: section.get(k, v) for k, v in DEFAULTS.items()}
    s["student"] = dict(DEFAULTS["student"], **{k: v for k, v in (section.get("student") or {}).items()
                                                if v is not None or k in ("layers", "config")})
    if section.get("tasks"):
        unknown = [t for t in section["tasks"] if t not in tasks]
        if unknown:
            raise ConfigError("%s.tasks: %s not among the run's tasks (%s)" % (key, ", ".join(map(repr, unknown)),
                                                                              ", ".join(tasks)))
        tasks = [t for t in tasks if t in section["tasks"]]
    if section.get("teacher") is None:
        raise ConfigError("%s.teacher: missing: a saved paddlepalm model (or task -> model)" % key)
    teacher = Teacher.load(section["teacher"], tasks=list(tasks), key=key + ".teacher")
    student_spec = {k: v for k, v in s["student"].items() if k != "heads" and v is not None}
    if "layers" in student_spec:
        models = {id(teacher.model(t)) for t in tasks}
        if len(models) > 1:
            raise ConfigError("%s.student.layers: the tasks have different teacher models; initialise the "
                              "student from one: give %s.student.config instead" % (key, key))
    student = build_student(student_spec, teacher.backbone(tasks[0]), key=key + ".student")
    for task in tasks:
        if readers and task in readers:
            check_tokenizer(teacher, task, readers[task], key)
            check_label_map(teacher, task, readers[task], key)
    heads = build_heads(teacher, tasks, student, s["student"]["heads"], key=key + ".student.heads")
    distiller = Distiller(teacher, student, heads, matches=s["matches"], temperature=s["temperature"],
                          soft_weight=s["soft_weight"], hard_weight=s["hard_weight"], kd_loss=s["kd_loss"],
                          scale_by_t2=s["scale_by_t2"], task_weights=s["task_weights"], cache=s["cache"],
                          readers=readers, key=key)
    return Distillation(teacher, student, heads, distiller)
