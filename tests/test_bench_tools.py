"""Pure helpers of the benchmark scripts: the profiler's op-table aggregation and thread lists."""
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
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
