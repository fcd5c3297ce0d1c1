"""``paddlepalm report RUN_DIR [--compare OTHER_RUN ...] [--out DIR]``: plots and a summary of runs.

A run directory holds the ``metrics.jsonl`` a trainer writes (``save_path`` or ``log_path``):
loss rows ``{"step", "loss": {task: v}, "lr", "task_steps": {task: n}, "time"}`` and evaluation
rows ``{"step", "eval": {task: {metric: v}}, "score"}``. The report has

* ``loss.png`` -- training loss per task against the step,
* ``dev_metrics.png`` -- each task's main dev metric against the step,
* ``task_steps.png`` -- how many steps each task got (cumulative over the run, and in total),
* ``balance.png`` -- with a balancer: gradient cosine per pair of tasks and each task's weight,
* ``summary.md`` -- steps per task, the final dev metrics of every run side by side with the
  differences from the compared runs (a multi-task run against single-task runs of the same tasks
  shows negative transfer at a glance), the metrics of the results files beside metrics.jsonl
  (``results.json``; ``test_results.json``, e.g. written by ``paddlepalm evaluate --split test
  --output RUN_DIR/test_results.json``; any ``--results FILE``), also for runs without a dev file,
  and the plots. A distillation run's results.json with a ``teacher`` block (the teacher's
  metrics on the same data) adds a teacher-vs-student table: each task's teacher value, student
  value and the share of it the student kept.

Each compared run is drawn in the same figures. Plotting needs matplotlib
(``pip install "paddlepalm[plot]"``); the summary does not.
"""
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlepalm.cli import arguments, command
from paddlepalm.errors import DataError, PalmError
from paddlepalm.utils.results import RESERVED_KEYS, retention

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
# The dev metric drawn and compared for a task: the first of these it has, else its first metric.
PRIMARY_METRICS = ("accuracy", "f1", "micro_f1", "exact_match")
RESULTS_FILES = (RESULTS_FILE, "test_results.json")  # read when beside metrics.jsonl
PLOT_EXTRA = 'pip install "paddlepalm[plot]"'
MATPLOTLIB_HINT = ("plots need matplotlib, which paddlepalm's base install does not include: %s "
                   "(or pass --no-plots)" % PLOT_EXTRA)


class ReportError(PalmError):
    """A run directory without usable metrics, or plotting without matplotlib."""


@dataclass
class RunLog:
    """One run's ``metrics.jsonl``, one row per step (a resumed run's later rows win)."""

    name: str
    path: str
    loss_rows: List[Dict[str, Any]] = field(default_factory=list)
    eval_rows: List[Dict[str, Any]] = field(default_factory=list)
    results: Optional[Dict[str, Any]] = None  # results.json beside metrics.jsonl, if any
    result_files: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # file name -> content
    balance_rows: List[Dict[str, Any]] = field(default_factory=list)  # balancer weights / gradient cosines

    @property
    def tasks(self) -> List[str]:
        names: List[str] = []
        for row in self.loss_rows:
            for task in list(row.get("task_steps", {})) + list(row.get("loss", {})):
                if task not in names:
                    names.append(task)
        for row in self.eval_rows:
            for task in row["eval"]:
                if task not in names:
                    names.append(task)
        return names

    @property
    def last_step(self) -> int:
        steps = [r["step"] for r in self.loss_rows + self.eval_rows]
        return max(steps) if steps else 0

    @property
    def task_steps(self) -> Dict[str, int]:
        """Steps each task got over the whole run (from the last loss row)."""
        return dict(self.loss_rows[-1].get("task_steps", {})) if self.loss_rows else {}

    @property
    def seconds(self) -> Optional[float]:
        times = [r["time"] for r in self.loss_rows if "time" in r]
        return times[-1] if times else None

    def final_eval(self) -> Dict[str, Dict[str, float]]:
        """The metrics of the last evaluation (each task's last, if tasks were evaluated apart)."""
        final: Dict[str, Dict[str, float]] = {}
        for row in self.eval_rows:
            final.update(row["eval"])
        return final

    def series(self, task: str, metric: Optional[str] = None) -> Tuple[List[int], List[float]]:
        """(steps, values): the task's loss, or its dev ``metric``."""
        if metric is None:
            pairs = [(r["step"], r["loss"][task]) for r in self.loss_rows if task in r.get("loss", {})]
        else:
            pairs = [(r["step"], r["eval"][task][metric]) for r in self.eval_rows
                     if metric in r["eval"].get(task, {})]
        return [p[0] for p in pairs], [float(p[1]) for p in pairs]

    def task_step_at(self, task: str, step: int) -> float:
        """How many steps ``task`` had got by global ``step`` (interpolated between loss rows)."""
        points = [(0, 0)] + [(r["step"], r["task_steps"][task]) for r in self.loss_rows
                             if task in r.get("task_steps", {})]
        for (s0, n0), (s1, n1) in zip(points, points[1:]):
            if s0 <= step <= s1:
                return n0 + (n1 - n0) * (step - s0) / max(1, s1 - s0)
        return float(points[-1][1])


def metrics_path(run_dir: str) -> str:
    """``run_dir/metrics.jsonl`` (``run_dir`` may also be the file itself)."""
    if os.path.isfile(run_dir):
        return run_dir
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise ReportError("%s: no %s here (a trainer writes it into save_path, or log_path)"
                          % (run_dir, METRICS_FILE))
    return path


def read_run(run_dir: str, name: Optional[str] = None, results: Sequence[str] = ()) -> RunLog:
    """Parse a run's ``metrics.jsonl``, the results files beside it (:data:`RESULTS_FILES`) and
    the extra ``results`` files (JSON ``{task: {metric: value}}``, e.g. ``paddlepalm evaluate
    --output``).

    A malformed line is an error naming the file and line -- except a cut-off last line (a run
    killed while writing), which is skipped.
    """
    path = metrics_path(run_dir)
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    loss: Dict[int, Dict[str, Any]] = {}
    evals: Dict[int, Dict[str, Any]] = {}
    balance: Dict[int, Dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                continue
            raise DataError("not a JSON line: %s" % e.msg, path=path, line=number) from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise DataError("expected an object with an integer 'step'", path=path, line=number)
        if isinstance(row.get("eval"), dict):
            evals[row["step"]] = row
        elif isinstance(row.get("loss"), dict):
            loss[row["step"]] = row
        elif isinstance(row.get("balance"), dict):
            balance[row["step"]] = row["balance"]
    run = RunLog(name or os.path.basename(folder.rstrip(os.sep)) or folder, path,
                 [loss[s] for s in sorted(loss)], [evals[s] for s in sorted(evals)],
                 balance_rows=[dict(balance[s], step=s) for s in sorted(balance)])
    if not run.loss_rows and not run.eval_rows:
        raise ReportError("%s: no loss or eval rows" % path)
    for path in [os.path.join(folder, n) for n in RESULTS_FILES] + list(results):
        if os.path.isfile(path) or path in results:
            run.result_files[os.path.basename(path)] = _read_results(path)
    run.results = run.result_files.get(RESULTS_FILE)
    return run


def _read_results(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ReportError("%s: results file not found" % path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError("invalid JSON: %s" % e.msg, path=path, line=e.lineno) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object {task: {metric: value}}", path=path)
    return data


def primary_metric(metrics: Dict[str, float]) -> Optional[str]:
    for name in PRIMARY_METRICS:
        if name in metrics:
            return name
    return next(iter(metrics), None)


def _unique_names(runs: Sequence[RunLog]) -> None:
    """Runs named after the same folder name get their parent folder's name too."""
    seen: Dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
    for r in runs:
        if seen[r.name] > 1:
            folder = os.path.dirname(os.path.abspath(r.path))
            r.name = os.path.join(os.path.basename(os.path.dirname(folder)), os.path.basename(folder))


# ----------------------------------------------------------------------------- tables
def _pct(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "%.2f" % (100 * value) if -1.0 <= value <= 1.0 else "%.3f" % value


def _delta(a: float, b: float) -> str:
    scale = 100 if -1.0 <= a <= 1.0 and -1.0 <= b <= 1.0 else 1
    d = (a - b) * scale
    mark = " ▼" if d < 0 else (" ▲" if d > 0 else "")
    return "%+.2f%s" % (d, mark)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def comparison(runs: Sequence[RunLog], source: str = "dev") -> List[Dict[str, Any]]:
    """Rows ``{task, metric, values: [v or None per run], deltas: [main - other or None]}`` of
    the final metrics: dev (last evaluation), or a results file's name (``'results.json'``;
    ``'test'`` means results.json too)."""
    finals = [r.final_eval() if source == "dev" else _result_metrics(r, source) for r in runs]
    rows = []
    tasks: List[str] = []
    for final in finals:
        tasks += [t for t in final if t not in tasks]
    for task in tasks:
        metric = primary_metric(next(f[task] for f in finals if task in f))
        values = [f.get(task, {}).get(metric) for f in finals]
        main = values[0]
        deltas = [None if main is None or v is None else main - v for v in values[1:]]
        rows.append({"task": task, "metric": metric, "values": values, "deltas": deltas})
    return rows


def _result_metrics(run: RunLog, source: str = RESULTS_FILE) -> Dict[str, Dict[str, float]]:
    """The ``{task: {metric: number}}`` part of a results file (other keys and values skipped)."""
    data = run.result_files.get(RESULTS_FILE if source == "test" else source) or {}
    out = {}
    for task, metrics in data.items():
        if task in RESERVED_KEYS or not isinstance(metrics, dict):
            continue
        numbers = {m: v for m, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            out[task] = numbers
    return out


def teacher_comparison(run: RunLog, source: str = RESULTS_FILE) -> List[Dict[str, Any]]:
    """Rows ``{task, metric, teacher, student, kept_percent}`` of a results file with a ``teacher``
    block (a distillation run: the teacher's metrics on the same data); [] without one. The metric
    is each task's primary one (:data:`PRIMARY_METRICS`) among those both have."""
    data = run.result_files.get(source) or {}
    block = data.get("teacher")
    if not isinstance(block, dict):
        return []
    teacher = {t: {m: v for m, v in ms.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
               for t, ms in block.items() if isinstance(ms, dict)}
    student = _result_metrics(run, source)
    metric = {}
    for task in student:
        common = {m: v for m, v in student[task].items() if m in teacher.get(task, {})}
        if common:
            metric[task] = primary_metric(common)
    kept = retention(student, teacher, metric)
    return [dict(kept[t], task=t) for t in student if t in kept]


def _teacher_lines(runs: Sequence[RunLog]) -> List[str]:
    """The teacher-vs-student section: one table over every run (and results file) with a teacher."""
    found = [(r, n) for r in runs for n in r.result_files if teacher_comparison(r, n)]
    if not found:
        return []
    lines = ["", "## Teacher vs student (%s)" % ", ".join(dict.fromkeys(n for _, n in found)), ""]
    several = len(found) > 1
    one_file_each = len(found) == len({id(r) for r, _ in found})
    body = []
    for r, name in found:
        label = r.name if one_file_each else "%s (%s)" % (r.name, name)
        for row in teacher_comparison(r, name):
            kept = "–" if row["kept_percent"] is None else "%.1f" % row["kept_percent"]
            cells = [row["task"], row["metric"], _pct(row["teacher"]), _pct(row["student"]), kept]
            body.append(([label] if several else []) + cells)
    lines += _table((["run"] if several else []) + ["task", "metric", "teacher", "student", "kept %"], body)
    for r, name in found:
        run = r.result_files[name].get("run")
        student = run.get("student") if isinstance(run, dict) else None
        if isinstance(student, dict) and student.get("num_hidden_layers"):
            lines.append("")
            lines.append("%sstudent: %d layers%s%s%s." % (
                "`%s` " % r.name if several else "", student["num_hidden_layers"],
                " (layers %s of the %s)" % (student["layers"], "pretrained encoder"
                                            if student.get("init") == "pretrained" else "teacher")
                if student.get("layers") else "",
                ", %s" % run["mode"] if run.get("mode") else "",
                "; teacher `%s`" % run["teacher"] if run.get("teacher") else ""))
    lines += ["", "kept % = 100 × student / teacher, on the same data."]
    return lines


def _results_title(runs: Sequence[RunLog], source: str) -> str:
    """``Test metrics (file)`` when the file says (or its name says) it is the test split."""
    content = runs[0].result_files.get(source) or next((r.result_files[source] for r in runs
                                                        if source in r.result_files), {})
    split = content.get("run", {}).get("split") if isinstance(content.get("run"), dict) else None
    if "test" in source or (split and "test" in str(split)):
        return "Test metrics (%s)" % source
    if split:
        return "Metrics on %s (%s)" % (split, source)
    return "Final evaluation (%s)" % source


def summary_markdown(runs: Sequence[RunLog], plots: Sequence[str] = ()) -> str:
    main = runs[0]
    lines = ["# Training report: %s" % main.name, ""]
    lines.append("Run: `%s` (%d steps%s)." % (main.path, main.last_step,
                                              ", %.0f s" % main.seconds if main.seconds else ""))
    if len(runs) > 1:
        lines.append("Compared with: %s." % ", ".join("`%s` (%s)" % (r.name, r.path) for r in runs[1:]))
    lines += ["", "## Steps per task", ""]
    rows = []
    for r in runs:
        counts = r.task_steps
        total = sum(counts.values()) or 1
        for task, n in counts.items():
            rows.append([r.name, task, str(n), "%.1f%%" % (100.0 * n / total)])
    lines += _table(["run", "task", "steps", "share"], rows) if rows else ["(no loss rows)"]
    files = [n for r in runs for n in r.result_files]
    sources = [("dev", "Final dev metrics (last evaluation)")]
    sources += [(n, _results_title(runs, n)) for n in dict.fromkeys(files)]
    for source, title in sources:
        table = comparison(runs, source)
        if not table:
            continue
        lines += ["", "## " + title, ""]
        headers = ["task", "metric", main.name]
        for r in runs[1:]:
            headers += [r.name, "Δ %s − %s" % (main.name, r.name)]
        body = []
        for row in table:
            cells = [row["task"], row["metric"], _pct(row["values"][0])]
            for v, d in zip(row["values"][1:], row["deltas"]):
                cells += [_pct(v), "–" if d is None else _delta(row["values"][0], v)]
            body.append(cells)
        lines += _table(headers, body)
        lines += _transfer_notes(table, main, runs)
    lines += _teacher_lines(runs)
    if len(runs) > 1:
        lines += ["", "Values in %% for metrics in [0, 1]; Δ > 0 (▲): %s is better, Δ < 0 (▼): worse "
                  "(with a single-task run: negative transfer)." % main.name]
    if plots:
        lines += ["", "## Plots", ""]
        lines += ["![%s](%s)" % (os.path.splitext(os.path.basename(p))[0], os.path.basename(p)) for p in plots]
    return "\n".join(lines) + "\n"


def _transfer_notes(table, main: RunLog, runs: Sequence[RunLog]) -> List[str]:
    """One line per task a compared run trained alone (or with fewer tasks) and does better."""
    notes = []
    for row in table:
        for other, v, d in zip(runs[1:], row["values"][1:], row["deltas"]):
            if d is not None and d < 0 and len(other.tasks) < len(main.tasks):
                notes.append("- negative transfer on **%s**: %s %s vs %s in `%s` (%s)"
                             % (row["task"], row["metric"], _pct(row["values"][0]), _pct(v), other.name,
                                _delta(row["values"][0], v)))
    return ([""] + notes) if notes else []


# ----------------------------------------------------------------------------- plots
def _figure(n_panels: int, title: str):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(MATPLOTLIB_HINT) from None
    cols = min(3, max(1, n_panels))
    rows = -(-max(1, n_panels) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(1, n_panels))]
    fig.suptitle(title)
    return fig, axes


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path)
    return path


def _x(run: RunLog, task: str, steps: List[int], x_axis: str) -> List[float]:
    return [run.task_step_at(task, s) for s in steps] if x_axis == "task" else list(steps)


def _xlabel(x_axis: str) -> str:
    return "steps of this task" if x_axis == "task" else "step (all tasks)"


def plot_loss(runs: Sequence[RunLog], path: str, x_axis: str = "step") -> Optional[str]:
    tasks = _all_tasks(runs, lambda r, t: r.series(t)[0])
    if not tasks:
        return None
    fig, axes = _figure(len(tasks), "training loss")
    for ax, task in zip(axes, tasks):
        drawn: List[float] = []
        for k, r in enumerate(runs):  # one colour per run in every panel
            steps, values = r.series(task)
            if steps:
                ax.plot(_x(r, task, steps, x_axis), values, label=r.name, linewidth=1.4, color="C%d" % k)
                drawn += values
        positive = [v for v in drawn if v > 0]
        if positive and len(positive) == len(drawn) and max(positive) > 30 * min(positive):
            ax.set_yscale("log")  # losses falling over orders of magnitude
        ax.set_title(task)
        ax.set_xlabel(_xlabel(x_axis))
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_dev(runs: Sequence[RunLog], path: str, x_axis: str = "step") -> Optional[str]:
    tasks = _all_tasks(runs, lambda r, t: t in r.final_eval())
    if not tasks:
        return None
    fig, axes = _figure(len(tasks), "dev metric")
    for ax, task in zip(axes, tasks):
        metric = primary_metric(next(r.final_eval()[task] for r in runs if task in r.final_eval()))
        for k, r in enumerate(runs):
            steps, values = r.series(task, metric)
            if steps:
                ax.plot(_x(r, task, steps, x_axis), values, marker="o", markersize=3, label=r.name,
                        linewidth=1.4, color="C%d" % k)
        ax.set_title("%s: %s" % (task, metric))
        ax.set_xlabel(_xlabel(x_axis))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_task_steps(runs: Sequence[RunLog], path: str) -> Optional[str]:
    if not any(r.task_steps for r in runs):
        return None
    fig, (cum, bars) = _figure(2, "steps per task")
    main = runs[0]
    for task in main.task_steps:
        steps = [r["step"] for r in main.loss_rows if task in r.get("task_steps", {})]
        cum.plot(steps, [r["task_steps"][task] for r in main.loss_rows if task in r.get("task_steps", {})],
                 label=task, linewidth=1.6)
    cum.set_title("%s: cumulative steps per task" % main.name)
    cum.set_xlabel("step (all tasks)")
    cum.set_ylabel("steps of the task")
    cum.grid(alpha=0.3)
    cum.legend(fontsize=8)
    tasks = _all_tasks(runs, lambda r, t: t in r.task_steps)
    width = 0.8 / max(1, len(runs))
    for k, r in enumerate(runs):
        xs = [i + k * width for i in range(len(tasks))]
        counts = [r.task_steps.get(t, 0) for t in tasks]
        drawn = bars.bar(xs, counts, width=width, label=r.name, color="C%d" % k)
        bars.bar_label(drawn, labels=[str(c) if c else "" for c in counts], fontsize=7)
    bars.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(tasks))])
    bars.set_xticklabels(tasks)
    bars.set_title("total steps per task")
    bars.set_ylabel("steps")
    bars.legend(fontsize=8)
    return _save(fig, path)


def plot_balance(runs: Sequence[RunLog], path: str) -> Optional[str]:
    """Gradient conflict over training (cosine of each pair of tasks' gradients on the shared
    encoder) and each task's effective weight, for the runs that used a balancer."""
    runs = [r for r in runs if r.balance_rows]
    if not runs:
        return None
    fig, (cos_ax, w_ax) = _figure(2, "loss balancing")
    for k, r in enumerate(runs):
        style = "-" if k == 0 else "--"
        pairs = sorted({p for row in r.balance_rows for p in row.get("grad_cosine", {})})
        for j, pair in enumerate(pairs):
            rows = [row for row in r.balance_rows if pair in row.get("grad_cosine", {})]
            cos_ax.plot([row["step"] for row in rows], [row["grad_cosine"][pair] for row in rows], style,
                        label="%s %s" % (r.name, pair.replace("|", " vs ")), color="C%d" % (k + j), linewidth=1.3)
        tasks = sorted({t for row in r.balance_rows for t in row.get("weights", {})})
        for j, task in enumerate(tasks):
            rows = [row for row in r.balance_rows if task in row.get("weights", {})]
            w_ax.plot([row["step"] for row in rows], [row["weights"][task] for row in rows], style,
                      label="%s %s" % (r.name, task), color="C%d" % (k + j), linewidth=1.3)
    cos_ax.axhline(0.0, color="0.5", linewidth=0.8)
    cos_ax.set_title("gradient cosine between tasks (shared encoder; < 0: conflict)")
    cos_ax.set_ylim(-1.05, 1.05)
    w_ax.set_title("effective task weight")
    for ax in (cos_ax, w_ax):
        ax.set_xlabel("step (all tasks)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _all_tasks(runs, has) -> List[str]:
    tasks: List[str] = []
    for r in runs:
        tasks += [t for t in r.tasks if t not in tasks and has(r, t)]
    return tasks


# ----------------------------------------------------------------------------- entry points
def make_report(run_dir: str, compare: Sequence[str] = (), out: Optional[str] = None, plots: bool = True,
                x_axis: str = "step", results: Sequence[str] = ()) -> Dict[str, str]:
    """Write the report of ``run_dir`` (compared with ``compare``) into ``out``
    (default ``<run_dir>/report``). Returns ``{"summary": path, "<plot>": path, ...}``.

    Without matplotlib ``summary.md`` is still written and :class:`ReportError` says how to get
    the plots (``plots=False`` skips them quietly).
    """
    if x_axis not in ("step", "task"):
        raise ValueError("x_axis must be 'step' or 'task', got %r" % x_axis)
    runs = [read_run(run_dir, results=results)] + [read_run(d) for d in compare]
    _unique_names(runs)
    if out is None:
        out = os.path.join(os.path.dirname(os.path.abspath(metrics_path(run_dir))), "report")
    os.makedirs(out, exist_ok=True)
    written: Dict[str, str] = {}
    error = None
    if plots:
        try:
            for key, make in (("loss", lambda p: plot_loss(runs, p, x_axis)),
                              ("dev_metrics", lambda p: plot_dev(runs, p, x_axis)),
                              ("task_steps", lambda p: plot_task_steps(runs, p)),
                              ("balance", lambda p: plot_balance(runs, p))):
                path = make(os.path.join(out, key + ".png"))
                if path:
                    written[key] = path
        except ReportError as e:
            error = e
    summary = os.path.join(out, "summary.md")
    with open(summary, "w", encoding="utf-8") as f:
        f.write(summary_markdown(runs, list(written.values())))
    written = {"summary": summary, **written}
    if error is not None:
        raise ReportError("%s (%s was written without plots)" % (error, summary))
    return written


@arguments("report")
def _report_args(p):
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run's output dir (with metrics.jsonl), or the file")
    p.add_argument("--compare", nargs="+", default=[], metavar="OTHER_RUN",
                   help="other runs to draw and tabulate beside it (e.g. single-task runs)")
    p.add_argument("--out", help="where to write the PNGs and summary.md (default: RUN_DIR/report)")
    p.add_argument("--x", dest="x_axis", choices=("step", "task"), default="step",
                   help="x axis of the loss and dev plots: global step, or the task's own steps")
    p.add_argument("--no-plots", action="store_true", help="write summary.md only (no matplotlib needed)")
    p.add_argument("--results", nargs="+", default=[], metavar="FILE",
                   help="more results files of RUN_DIR to tabulate, e.g. the --output of 'paddlepalm "
                        "evaluate --split test' (RUN_DIR/test_results.json is read without asking)")


@command("report", help="plot a run's metrics.jsonl (loss, dev metrics, steps per task) and compare runs")
def _report(args) -> int:
    written = make_report(args.run_dir, args.compare, args.out, plots=not args.no_plots, x_axis=args.x_axis,
                          results=args.results)
    for key, path in written.items():
        print("%-12s %s" % (key, path))
    return 0
