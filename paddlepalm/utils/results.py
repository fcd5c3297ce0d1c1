"""``results.json``: the test metrics of a run, its wall time and how it was run.

Layout: ``{"<task>": {"<metric>": value, ...}, ..., "wall_seconds": s, "run": {...}}`` where
``run`` holds the command line, the split, settings and speed. A distillation run adds the
teacher's metrics on the same data, ``"teacher": {"<task>": {"<metric>": value}}``, and
``"retention"`` (see :func:`retention`). ``paddlepalm report`` shows the task metrics next to
the dev curves of ``metrics.jsonl``, and teacher against student when there is a teacher block.
"""
import json
import os
import shlex
import sys
from typing import Any, Dict, Optional

from paddlepalm.utils.paths import project_root_of

RESULTS_FILE = "results.json"
RESERVED_KEYS = ("wall_seconds", "run", "teacher", "retention")  # results.json keys that are not tasks


def command_line(root: Optional[str] = None) -> str:
    """``python <script> <args>`` of this process, the script's path relative to ``root``: by
    default the project the script belongs to (see :func:`project_root_of`), else the current dir."""
    script = "?"
    if sys.argv and sys.argv[0]:
        path = os.path.abspath(sys.argv[0])
        script = os.path.relpath(path, root or project_root_of(path) or os.getcwd())
    return " ".join(["python", script] + [shlex.quote(a) for a in sys.argv[1:]])


def training_speed(summary: Dict[str, Any], batch_sizes: Dict[str, int]) -> Dict[str, float]:
    """Seconds, steps/s and training examples/s of a ``fit``/``train`` summary
    (``wall_seconds``, ``steps``, ``task_steps``); ``batch_sizes`` maps task -> batch size."""
    seconds = max(1e-9, float(summary["wall_seconds"]))
    examples = sum(n * batch_sizes[task] for task, n in summary["task_steps"].items())
    return {"train_seconds": round(seconds, 1), "steps_per_second": round(summary["steps"] / seconds, 3),
            "train_examples_per_second": round(examples / seconds, 1)}


def retention(student: Dict[str, Dict[str, float]], teacher: Dict[str, Dict[str, float]],
              metric: Dict[str, str]) -> Dict[str, Dict[str, Any]]:
    """How much of the teacher's quality the student kept, per task both have:
    ``{task: {"metric", "teacher", "student", "kept_percent"}}`` with ``kept_percent`` = 100 *
    student / teacher of ``metric[task]`` (None when the teacher's value is 0)."""
    out: Dict[str, Dict[str, Any]] = {}
    for task, name in metric.items():
        if name not in student.get(task, {}) or name not in teacher.get(task, {}):
            continue
        s, t = float(student[task][name]), float(teacher[task][name])
        out[task] = {"metric": name, "teacher": t, "student": s, "kept_percent": 100.0 * s / t if t else None}
    return out


def write_results(output_dir: str, metrics: Dict[str, Dict[str, float]], wall_seconds: float,
                  run: Dict[str, Any], teacher: Optional[Dict[str, Dict[str, float]]] = None,
                  teacher_metric: Optional[Dict[str, str]] = None) -> str:
    """Write ``<output_dir>/results.json``: task -> metric -> value, ``wall_seconds`` and ``run``
    (with this process's :func:`command_line` added); return its path.

    A distillation run gives ``teacher`` (task -> metric -> value on the same data), written as
    the ``teacher`` block, and ``teacher_metric`` (task -> the metric compared), written as
    ``retention`` (:func:`retention`)."""
    os.makedirs(output_dir, exist_ok=True)
    data: Dict[str, Any] = {task: {k: float(v) for k, v in m.items()} for task, m in metrics.items()}
    if teacher is not None:
        data["teacher"] = {task: {k: float(v) for k, v in m.items()} for task, m in teacher.items()}
        if teacher_metric:
            data["retention"] = retention(metrics, teacher, teacher_metric)
    data["wall_seconds"] = round(float(wall_seconds), 1)
    data["run"] = dict(run, command=command_line())
    path = os.path.join(output_dir, RESULTS_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def read_results(path: str) -> Dict[str, Any]:
    """A results.json as a dict."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def task_metrics(results: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """The task -> metric -> value part of a results.json."""
    return {k: v for k, v in results.items() if k not in RESERVED_KEYS}
