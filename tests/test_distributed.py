"""Data-parallel training: batch sharding, gradient averaging, rank-0 writing, gathered evaluation,
and failure handling -- with 2 CPU processes under ``python -m paddle.distributed.launch`` (gloo)."""
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from paddlepalm import distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "dist_scripts", "train_two_tasks.py")


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected"))}


def _launch(args, log_dir, timeout):
    import paddle

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() == 1:
        pytest.skip("the launcher gives each rank its own GPU (NCCL): 2 ranks need 2 GPUs or a CPU build")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", log_dir,
           SCRIPT] + args
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)
    return proc, time.time() - start


def _weights(model_dir):
    import paddle
    from safetensors.numpy import load_file

    state = {}
    for path in glob.glob(os.path.join(model_dir, "backbone", "*.safetensors")):
        state.update({"backbone." + k: v for k, v in load_file(path).items()})
    state.update({"heads." + k: np.asarray(v) for k, v in paddle.load(os.path.join(model_dir, "heads.pdparams")).items()})
    return state


def _max_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def _rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


# ----------------------------------------------------------------------------- in one process
def test_shard_range_covers_rows_once():
    for n in range(0, 12):
        for world in (1, 2, 3, 4):
            parts = [dist.shard_range(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(parts[i][1] == parts[i + 1][0] for i in range(world - 1))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_slice_batch_rows_and_pairwise_halves():
    batch = {"input_ids": np.arange(12).reshape(3, 4), "label_ids": np.array([0, 1, 2]),
             "feature_index": np.array([5, 6, 7]), "example_index": np.array([5, 6, 7])}
    part = dist.slice_batch(batch, 1, 3)
    np.testing.assert_array_equal(part["input_ids"], batch["input_ids"][1:3])  # padding kept as is
    assert part["label_ids"].tolist() == [1, 2] and part["feature_index"].tolist() == [6, 7]
    # pairwise match: B=3 triples are 6 encoder rows (positives, then negatives)
    pair = {"input_ids": np.arange(6)[:, None] * np.ones((1, 2), dtype=np.int64), "pair_rows": np.asarray(3),
            "feature_index": np.array([0, 1, 2])}
    part = dist.slice_batch(pair, 1, 3)
    assert part["input_ids"][:, 0].tolist() == [1, 2, 4, 5] and int(part["pair_rows"]) == 2


def test_single_process_helpers_are_no_ops():
    assert not dist.is_launched() and dist.world_size() == 1 and dist.rank() == 0 and dist.is_main_process()
    batch = {"input_ids": np.zeros((3, 2), dtype=np.int64)}
    assert dist.shard_batch(batch) == (batch, 1.0)
    assert dist.gather_records([1, 2]) == [1, 2] and dist.all_gather_object("x") == ["x"]
    assert list(dist.shard_batches(iter("abc"), 3)) == list("abc")
    assert dist.step_seed(17) == 17 and dist.broadcast_object(5) == 5
    pending = [(0, 1.5)]
    assert dist.average_step_losses(pending) is pending
    assert not dist.init()


def test_launch_command_runs_the_interpreter_under_paddles_launcher():
    cmd = dist.launch_command(["-m", "paddlepalm", "train", "cfg.yaml"], 4, nnodes=2, master="10.0.0.1:8090")
    assert cmd[:5] == [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "4"]
    assert cmd[5:9] == ["--nnodes", "2", "--master", "10.0.0.1:8090"]
    assert cmd[9:] == [sys.executable, "-u", "-m", "paddlepalm", "train", "cfg.yaml"]


# ----------------------------------------------------------------------------- two CPU processes
def test_two_ranks_match_one_process_with_the_global_batch(tmp_path):
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import train_two_tasks
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    # reference: one process, batch 4 (in this process; the launcher is not involved)
    single = train_two_tasks.run(str(tmp_path / "one"), batch=4, steps=20)
    # two ranks, global batch 4 = 2 rows per rank (uneven 1/0 and 2/1 splits at epoch ends)
    proc, seconds = _launch([str(tmp_path / "two"), "--batch", "4", "--steps", "20"], str(tmp_path / "log"), 120)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    # the same parameters: final model, and the checkpoint written during training
    assert _max_diff(_weights(str(one / "model")), _weights(str(two / "model"))) <= 1e-5
    assert _max_diff(_weights(str(one / "ckpt" / "ckpt.step20")), _weights(str(two / "ckpt" / "ckpt.step20"))) <= 1e-5
    # ... and the comparison is not vacuous: training moved the weights, and a rank training
    # alone on its half batch would end elsewhere
    half = train_two_tasks.run(str(tmp_path / "half"), batch=2, steps=20)
    assert _max_diff(_weights(str(one / "model")), _weights(str(tmp_path / "half" / "model"))) > 1e-3
    assert half["task_steps"] == single["task_steps"]
    # both ranks ran the same tasks and computed the same (gathered) metrics
    views = [json.load(open(two / ("rank%d.json" % r))) for r in (0, 1)]
    assert [v["world"] for v in views] == [2, 2]
    assert views[0]["task_steps"] == views[1]["task_steps"] == single["task_steps"]
    assert views[0]["metrics"] == views[1]["metrics"]
    for task in ("a", "b"):
        for name, value in single["metrics"][task].items():
            assert views[0]["metrics"][task][name] == pytest.approx(value, abs=1e-9)
        p1, p2 = _rows(one / "eval" / task / "predictions.json"), _rows(two / "eval" / task / "predictions.json")
        assert [r["index"] for r in p2] == [r["index"] for r in p1] == list(range(len(p1)))
        np.testing.assert_allclose([r["probs"] for r in p2], [r["probs"] for r in p1], atol=1e-5)
    np.testing.assert_allclose(views[1]["pooler"], views[0]["pooler"], atol=0)  # replicas stay identical
    # rank 0 alone wrote the log: each row once, with the global batch's loss
    log1, log2 = _rows(one / "ckpt" / "metrics.jsonl"), _rows(two / "ckpt" / "metrics.jsonl")
    assert [(r["step"], "eval" in r) for r in log2] == [(r["step"], "eval" in r) for r in log1]
    for r1, r2 in zip(log1, log2):
        for task, loss in r1.get("loss", {}).items():
            assert r2["loss"][task] == pytest.approx(loss, abs=1e-5)
    assert sorted(os.listdir(two / "ckpt")) == ["ckpt.step20", "metrics.jsonl"]
    assert not [p for p in os.listdir(two / "ckpt") if p.startswith(".tmp")]
    out = proc.stdout.decode(errors="replace")
    assert "step 20/20" in out and "rank 0 of 2 on cpu (backend gloo)" in open(tmp_path / "log" / "workerlog.0").read()
    print("2-rank launcher run: %.1f s" % seconds)


def test_a_crashing_rank_stops_the_job_promptly(tmp_path):
    proc, seconds = _launch([str(tmp_path / "out"), "--crash-rank", "1", "--crash-step", "3"],
                            str(tmp_path / "log"), 60)
    assert proc.returncode != 0
    assert seconds < 60
    assert "rank 1 fails on purpose at step 3" in open(tmp_path / "log" / "workerlog.1").read()
    assert not glob.glob(str(tmp_path / "out" / "rank*.json"))


def test_cli_train_nproc_relaunches_under_the_launcher(tmp_path):
    from tests.helpers import tiny_config, write_vocab

    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        from train_two_tasks import ROWS_A, ROWS_B
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    write_vocab(str(tmp_path))
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config()))
    for name, rows in (("a", ROWS_A), ("b", ROWS_B)):
        (tmp_path / (name + ".tsv")).write_text("label\ttext_a\n" + "".join("%s\t%s\n" % r for r in rows))
    (tmp_path / "config.yaml").write_text(
        "backbone: {config: tiny.json}\ntokenizer: {vocab: vocab.txt}\nbatch_size: 4\nmax_len: 16\n"
        "max_steps: 6\nprint_steps: 2\noutput_dir: %s\n"
        "tasks:\n  a: {reader: classify, train: a.tsv, dev: a.tsv}\n  b: {reader: classify, train: b.tsv}\n"
        % (tmp_path / "out"))
    import paddle

    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() == 1:
        pytest.skip("2 ranks need 2 GPUs or a CPU build")
    proc = subprocess.run([sys.executable, "-m", "paddlepalm", "train", str(tmp_path / "config.yaml"), "--nproc", "2"],
                          cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    logs = tmp_path / "out" / "launch_logs"
    assert "rank 1 of 2 on cpu" in open(logs / "workerlog.1").read()
    assert "step 6/6" in open(logs / "workerlog.0").read() and "step 6/6" not in open(logs / "workerlog.1").read()
    results = json.load(open(tmp_path / "out" / "results.json"))
    assert set(results) == {"a"} and "accuracy" in results["a"]
    steps = [r["step"] for r in _rows(tmp_path / "out" / "metrics.jsonl") if "loss" in r]
    assert steps == [2, 4, 6]  # written once, by rank 0


@pytest.mark.parametrize("balancer", ["pcgrad", "dwa"])
def test_two_ranks_match_one_process_in_joint_mode_with_a_balancer(tmp_path, balancer):
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import train_two_tasks
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    opts = ["--step-mode", "joint", "--balancer", balancer]
    single = train_two_tasks.run(str(tmp_path / "one"), batch=4, steps=12, step_mode="joint", balancer=balancer)
    proc, _ = _launch([str(tmp_path / "two"), "--batch", "4", "--steps", "12"] + opts, str(tmp_path / "log"), 120)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
    assert single["task_steps"] == {"a": 12, "b": 12}
    assert _max_diff(_weights(str(tmp_path / "one" / "model")), _weights(str(tmp_path / "two" / "model"))) <= 1e-5
    log1, log2 = _rows(tmp_path / "one" / "ckpt" / "metrics.jsonl"), _rows(tmp_path / "two" / "ckpt" / "metrics.jsonl")
    w1 = [r["balance"]["weights"] for r in log1 if "balance" in r]
    w2 = [r["balance"]["weights"] for r in log2 if "balance" in r]
    assert w1 and len(w1) == len(w2)
    for a, b in zip(w1, w2):  # the balancer took the same decisions on the global batch
        assert a == pytest.approx(b, abs=1e-5)
