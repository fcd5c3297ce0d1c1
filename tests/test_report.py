"""`paddlepalm report`: metrics.jsonl parsing, comparison tables (negative transfer), PNG plots."""
import json
import os

import pytest

from paddlepalm import cli
from paddlepalm import report as rep
from paddlepalm.errors import DataError


def _write_run(folder, tasks, steps=40, final=None, every=10, results=None, extra_lines=()):
    """A synthetic metrics.jsonl: losses falling, dev metrics rising to ``final``."""
    os.makedirs(folder, exist_ok=True)
    final = final or {t: 0.9 for t in tasks}
    counts = {t: 0 for t in tasks}
    lines = []
    for step in range(1, steps + 1):
        counts[tasks[step % len(tasks)]] += 1
        if step % 5 == 0:
            lines.append({"step": step, "loss": {t: 2.0 / step ** 0.5 for t in tasks}, "lr": 1e-4,
                          "task_steps": dict(counts), "time": step * 0.5})
        if step % every == 0:
            metric = {"intent": "accuracy", "slot": "f1"}
            lines.append({"step": step, "eval": {t: {metric.get(t, "accuracy"): final[t] * step / steps,
                                                     "other": 0.5} for t in tasks}, "score": None})
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.write("\n".join(json.dumps(l) for l in lines) + "\n")
        for extra in extra_lines:
            f.write(extra + "\n")
    if results:
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump(results, f)
    return str(folder)


def test_read_run_keeps_last_row_per_step_and_skips_cut_last_line(tmp_path):
    run_dir = _write_run(tmp_path / "mt", ["intent", "slot"],
                         extra_lines=['{"step": 40, "loss": {"intent": 0.01, "slot": 0.02}, "task_steps": '
                                      '{"intent": 20, "slot": 20}, "time": 30}', '{"step": 45, "lo'])
    run = rep.read_run(run_dir)
    assert run.name == "mt" and run.tasks == ["intent", "slot"]
    assert run.last_step == 40
    steps, losses = run.series("intent")
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40] and losses[-1] == 0.01  # the resumed row wins
    assert run.task_steps == {"intent": 20, "slot": 20}
    assert run.final_eval()["slot"]["f1"] == pytest.approx(0.9)
    assert run.task_step_at("intent", 40) == 20 and 0 < run.task_step_at("intent", 7) < 5


def test_malformed_line_names_file_and_line(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"step": 1, "loss": {"a": 1.0}}\nnot json\n{"step": 2, "loss": {"a": 1}}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl, line 2: not a JSON line"):
        rep.read_run(str(folder))
    with pytest.raises(rep.ReportError, match="no metrics.jsonl"):
        rep.read_run(str(tmp_path))


def test_comparison_shows_negative_transfer(tmp_path):
    mt = _write_run(tmp_path / "multi", ["intent", "slot"], final={"intent": 0.98, "slot": 0.93})
    intent = _write_run(tmp_path / "intent_only", ["intent"], final={"intent": 0.97})
    slot = _write_run(tmp_path / "slot_only", ["slot"], final={"slot": 0.95})
    runs = [rep.read_run(d) for d in (mt, intent, slot)]
    rows = {r["task"]: r for r in rep.comparison(runs)}
    assert rows["intent"]["metric"] == "accuracy" and rows["slot"]["metric"] == "f1"
    assert rows["intent"]["values"] == [pytest.approx(0.98), pytest.approx(0.97), None]
    assert rows["intent"]["deltas"][0] == pytest.approx(0.01) and rows["intent"]["deltas"][1] is None
    assert rows["slot"]["deltas"][1] == pytest.approx(-0.02)
    md = rep.summary_markdown(runs)
    assert "| slot | f1 | 93.00 | – | – | 95.00 | -2.00 ▼ |" in md
    assert "| intent | accuracy | 98.00 | 97.00 | +1.00 ▲ | – | – |" in md
    assert "negative transfer on **slot**" in md and "negative transfer on **intent**" not in md


def test_cli_report_writes_readable_pngs_and_summary(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    mt = _write_run(tmp_path / "multi", ["intent", "slot"], final={"intent": 0.98, "slot": 0.93},
                    results={"intent": {"accuracy": 0.975}, "slot": {"f1": 0.931}, "wall_seconds": 10.0,
                             "run": {"split": "test"}})
    single = _write_run(tmp_path / "slot_only", ["slot"], final={"slot": 0.95},
                        results={"slot": {"f1": 0.94}, "wall_seconds": 5.0, "run": {}})
    out = tmp_path / "report"
    assert cli.main(["report", mt, "--compare", single, "--out", str(out), "--x", "task"]) == 0
    printed = capsys.readouterr().out
    for name in ("summary.md", "loss.png", "dev_metrics.png", "task_steps.png"):
        assert (out / name).is_file() and str(out / name) in printed
        if name.endswith(".png"):
            data = (out / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    md = (out / "summary.md").read_text()
    assert "## Test metrics (results.json)" in md and "| slot | f1 | 93.10 | 94.00 | -0.90 ▼ |" in md
    assert "![loss](loss.png)" in md


def test_without_matplotlib_summary_is_written_and_message_is_clear(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    run_dir = _write_run(tmp_path / "run", ["intent"])
    assert cli.main(["report", run_dir]) == 1
    err = capsys.readouterr().err
    assert 'plots need matplotlib, which paddlepalm\'s base install does not include: pip install ' \
           '"paddlepalm[plot]" (or pass --no-plots)' in err
    assert "summary.md was written without plots" in err and "Traceback" not in err
    assert os.path.isfile(os.path.join(run_dir, "report", "summary.md"))
    assert cli.main(["report", run_dir, "--no-plots"]) == 0


def _loss_only_run(folder, task="ner"):
    """A run trained without a dev file: metrics.jsonl has loss rows only."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for step in (5, 10):
            f.write(json.dumps({"step": step, "loss": {task: 1.0 / step}, "lr": 1e-4,
                                "task_steps": {task: step}, "time": step}) + "\n")
    return str(folder)


def test_summary_shows_test_metrics_of_a_run_without_dev_file(tmp_path):
    run_dir = _loss_only_run(tmp_path / "run")
    with open(os.path.join(run_dir, "results.json"), "w") as f:
        json.dump({}, f)  # what `paddlepalm train` writes without a dev file
    with open(os.path.join(run_dir, "test_results.json"), "w") as f:  # paddlepalm evaluate --split test
        json.dump({"ner": {"f1": 0.625, "precision": 0.5, "per_type": {"loc": 0.7}}}, f)
    out = tmp_path / "report"
    assert cli.main(["report", run_dir, "--no-plots", "--out", str(out)]) == 0
    md = (out / "summary.md").read_text()
    assert "## Test metrics (test_results.json)" in md and "| ner | f1 | 62.50 |" in md
    assert "Final dev metrics" not in md


def test_extra_results_file_and_results_json_titles(tmp_path, capsys):
    run_dir = _write_run(tmp_path / "run", ["intent"], final={"intent": 0.9},
                         results={"intent": {"accuracy": 0.9, "macro_f1": 0.8}})  # YAML route: final dev
    extra = tmp_path / "eval_test.json"
    extra.write_text(json.dumps({"intent": {"accuracy": 0.85}}))
    assert cli.main(["report", run_dir, "--no-plots", "--results", str(extra)]) == 0
    md = open(os.path.join(run_dir, "report", "summary.md")).read()
    assert "## Final evaluation (results.json)" in md and "## Test metrics (results.json)" not in md
    assert "## Test metrics (eval_test.json)" in md and "| intent | accuracy | 85.00 |" in md
    assert cli.main(["report", run_dir, "--no-plots", "--results", str(tmp_path / "nope.json")]) == 1
    assert "nope.json: results file not found" in capsys.readouterr().err


def test_balance_rows_are_read_and_plotted(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [json.dumps({"step": s, "balance": {"weights": {"intent": 1.0 + s / 100, "slot": 1.0},
                                               "grad_cosine": {"intent|slot": -0.2 + s / 200},
                                               "grad_norm": {"intent": 1.0, "slot": 2.0}}}) for s in (5, 10, 15)]
    run_dir = _write_run(tmp_path / "balanced", ["intent", "slot"], steps=20, extra_lines=rows)
    run = rep.read_run(run_dir)
    assert [r["step"] for r in run.balance_rows] == [5, 10, 15]
    assert run.balance_rows[0]["grad_cosine"]["intent|slot"] == pytest.approx(-0.175)
    written = rep.make_report(run_dir, out=str(tmp_path / "report"))
    data = open(written["balance"], "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert "balance" not in rep.make_report(_write_run(tmp_path / "plain", ["intent"]),
                                            out=str(tmp_path / "r2"))


def test_distillation_results_show_teacher_against_student(tmp_path):
    """A results.json with a teacher block (examples/distill) gets a teacher-vs-student table; the
    teacher and retention blocks are not tasks of the test-metrics table."""
    student = {"intent": {"accuracy": 0.97, "macro_f1": 0.96}, "slot": {"f1": 0.9215, "precision": 0.9}}
    teacher = {"intent": {"accuracy": 0.99, "macro_f1": 0.99}, "slot": {"f1": 0.97, "precision": 0.96}}
    run = {"split": "test", "mode": "distill", "teacher": "/runs/flagship/model",
           "student": {"layers": [0, 2, 4], "num_hidden_layers": 3, "init": "teacher"}}
    distilled = _write_run(tmp_path / "distill", ["slot", "intent"], final={"intent": 0.96, "slot": 0.9},
                           results=dict(student, teacher=teacher, retention={"slot": {"metric": "f1"}},
                                        wall_seconds=100.0, run=run))
    baseline = _write_run(tmp_path / "no_teacher", ["slot", "intent"], final={"intent": 0.9, "slot": 0.8},
                          results={"intent": {"accuracy": 0.95}, "slot": {"f1": 0.873}, "teacher": teacher,
                                   "run": dict(run, mode="no-teacher",
                                               student=dict(run["student"], init="pretrained"))})
    rows = {r["task"]: r for r in rep.teacher_comparison(rep.read_run(distilled))}
    assert rows["slot"]["metric"] == "f1" and rows["intent"]["metric"] == "accuracy"
    assert rows["slot"]["kept_percent"] == pytest.approx(95.0) and rows["intent"]["kept_percent"] == pytest.approx(
        100 * 0.97 / 0.99)
    assert rep.teacher_comparison(rep.read_run(_write_run(tmp_path / "plain", ["intent"],
                                                          results={"intent": {"accuracy": 0.9}}))) == []

    out = tmp_path / "report"
    assert cli.main(["report", distilled, "--no-plots", "--out", str(out)]) == 0
    md = (out / "summary.md").read_text()
    assert "## Teacher vs student (results.json)" in md
    assert "| task | metric | teacher | student | kept % |" in md
    assert "| slot | f1 | 97.00 | 92.15 | 95.0 |" in md and "| intent | accuracy | 99.00 | 97.00 | 98.0 |" in md
    assert "student: 3 layers (layers [0, 2, 4] of the teacher), distill; teacher `/runs/flagship/model`." in md
    test_table = md.split("## Test metrics (results.json)")[1].split("##")[0]
    assert "| slot | f1 | 92.15 |" in test_table and "teacher" not in test_table and "retention" not in test_table

    assert cli.main(["report", distilled, "--compare", baseline, "--no-plots", "--out", str(out)]) == 0
    md = (out / "summary.md").read_text()
    assert "| distill | slot | f1 | 97.00 | 92.15 | 95.0 |" in md
    assert "| no_teacher | slot | f1 | 97.00 | 87.30 | 90.0 |" in md
    assert "| no_teacher | intent | accuracy | 99.00 | 95.00 | 96.0 |" in md
    assert "`no_teacher` student: 3 layers (layers [0, 2, 4] of the pretrained encoder), no-teacher" in md
    assert "| slot | f1 | 92.15 | 87.30 | +4.85 ▲ |" in md  # the student against the baseline, test split
