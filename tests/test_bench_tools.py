"""Pure helpers of the benchmark scripts: the profiler's op-table aggregation, thread lists, the
paired rounds, and what the Hugging Face side of bench_joint shares with paddlepalm."""
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
import _hf_side  # noqa: E402  (no torch at import)
import bench_joint  # noqa: E402
import common  # noqa: E402
import profile_step  # noqa: E402


def _x(cat, name, ts, dur):
    return {"ph": "X", "cat": cat, "name": "%s[%.3f us]" % (name, dur), "ts": ts, "dur": dur}


def test_op_names_are_normalised():
    assert profile_step.op_name("matmul dygraph[1.2 ms]") == "matmul"
    assert profile_step.op_name("Global_MatmulGradNode") == "matmul_grad"
    assert profile_step.op_name("Global_LayerNormGradNode[3 us]") == "layer_norm_grad"
    assert profile_step.op_name("adamw_ dygraph") == "adamw_"


def test_aggregate_ops_self_time_nesting_and_phases():
    events = [
        _x("PythonUserDefined", "encoder", 0, 100),
        _x("Operator", "addmm dygraph", 10, 30),
        _x("Operator", "gelu dygraph", 50, 20),
        _x("PythonUserDefined", "backward", 200, 100),
        _x("Operator", "Global_GradNodePyLayer__LinearFunction", 210, 60),  # calls two matmuls
        _x("Operator", "matmul dygraph", 215, 20),
        _x("Operator", "matmul dygraph", 240, 25),
        _x("Operator", "Global_GeluGradNode", 280, 10),
        _x("Operator", "add dygraph", 400, 5),  # outside every phase
        _x("Kernel", "ignored", 10, 1000),
    ]
    table = profile_step.aggregate_ops(events)
    assert table[("encoder", "addmm")] == [1, 30.0]
    assert table[("encoder", "gelu")] == [1, 20.0]
    assert table[("backward", "matmul")] == [2, 45.0]
    assert table[("backward", "Global_GradNodePyLayer__LinearFunction")] == [1, 15.0]  # 60 - 20 - 25
    assert table[("backward", "gelu_grad")] == [1, 10.0]
    assert table[("other", "add")] == [1, 5.0]
    assert sum(v[1] for v in table.values()) == pytest.approx(125.0)


def test_thread_count_lists():
    assert common.parse_thread_counts("1,2") == [1, 2]
    assert common.parse_thread_counts("4") == [4]
    assert common.parse_thread_counts(None) == sorted({1, common.default_threads()})
    for bad in ("0", "two", ","):
        with pytest.raises(SystemExit, match="--threads"):
            common.parse_thread_counts(bad)


def test_round_schedule_alternates_sides_and_thread_counts():
    order = list(common.round_schedule(["p", "h"], [1, 2], 2))
    assert order == [(0, 1, "p"), (0, 1, "h"), (0, 2, "h"), (0, 2, "p"),
                     (1, 2, "h"), (1, 2, "p"), (1, 1, "p"), (1, 1, "h")]
    assert list(common.round_schedule(["p", "h"], [2], 2)) == [(0, 2, "p"), (0, 2, "h"), (1, 2, "h"), (1, 2, "p")]


def test_paired_ratios_per_round():
    runs = [{"rep": 0, "threads": 2, "side": "p", "s": 3.0}, {"rep": 0, "threads": 2, "side": "h", "s": 2.0},
            {"rep": 1, "threads": 2, "side": "p", "s": 1.0}, {"rep": 1, "threads": 1, "side": "h", "s": 9.0}]
    assert common.paired(runs, "p", "h", "s", 2) == [1.5]


def test_hf_side_cuts_long_sentences_like_the_sequence_label_reader():
    from paddlepalm.reader.sequence_label import _fit_words

    for grouped, budget in [([[1], [2, 3], [4]], 10), ([[1], [2, 3], [4]], 3), ([[1, 2, 3, 4]], 2),
                            ([[5, 6, 7], [8]], 2), ([[1], [2]], 1)]:
        ids, word_ids = _fit_words(grouped, budget)
        assert _hf_side.fit_words(grouped, budget) == (ids, len(set(word_ids)))


def test_joint_plan_is_the_flagship_step_count():
    assert bench_joint.plan_steps(13084, 32, 2) == (818, 273)  # 409 batches per epoch
    assert bench_joint.plan_steps(200, 32, 0.2) == (1, 1)
    assert bench_joint.plan_steps(200, 32, 2, max_steps=10) == (10, 4)


def test_palm_module_loads_metrics_without_the_package_init():
    code = ("import sys; sys.path.insert(0, %r); import common; "
            "m = common.palm_module('paddlepalm.metrics.sequence'); "
            "f1 = m.entity_f1([['B-x', 'I-x', 'O']], [['B-x', 'I-x', 'B-y']])['f1']; "
            "print(round(f1, 4), sys.modules['paddlepalm']._palm_stub, 'paddle' in sys.modules)" % BENCH)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["0.6667", "True", "False"]


def test_fusion_ratios_pair_each_onnxruntime_row_with_its_unfused_twin():
    import bench_infer

    rows = [{"threads": 2, "batch": 1, "task": "slot", "variant": v, "eps": e}
            for v, e in (("dygraph fp32", 100.0), ("onnxruntime fp32", 250.0), ("onnxruntime fp32 unfused", 200.0),
                         ("onnxruntime int8", 900.0), ("onnxruntime int8 unfused", 600.0))]
    rows.append({"threads": 1, "batch": 8, "task": "intent", "variant": "onnxruntime fp32", "eps": 50.0})  # no twin
    assert bench_infer._fusion_ratios(rows) == ["2T b1 slot fp32 1.25x", "2T b1 slot int8 1.50x"]


def test_every_common_helper_the_benchmarks_call_exists():
    # a helper removed from common.py once left three benchmarks failing whenever --threads was not given
    import re

    called = set()
    for name in os.listdir(BENCH):
        if name.endswith(".py"):
            with open(os.path.join(BENCH, name), encoding="utf-8") as f:
                called |= {(name, m) for m in re.findall(r"\bcommon\.([A-Za-z_]\w*)", f.read())}
    missing = sorted((script, attr) for script, attr in called if attr != "py" and not hasattr(common, attr))
    assert len(called) > 30 and not missing, missing


def test_long_text_threads_default_to_paddlepalms():
    import bench_long_text

    assert bench_long_text.parse_args([]).threads == common.default_threads()
