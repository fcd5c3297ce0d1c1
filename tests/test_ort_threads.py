"""ONNX Runtime thread pools (paddlepalm.deploy.ort_threads): per session, or one for the process.

The process-wide pool changes the whole process for good (ORT then refuses sessions with their
own pool), so the real-ONNX-Runtime checks run in a child process; the rules themselves are
checked in-process against a stand-in ``ort`` module that records what it is asked.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from paddlepalm.deploy import ort_threads
from tests.deploy_fixtures import SLOT_TEXTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _FakeOrt:
    """Just what session_options touches; set_global_thread_pool_sizes can be made to fail."""

    class SessionOptions:
        def __init__(self):
            self.use_per_session_threads, self.intra_op_num_threads = True, 0

    class GraphOptimizationLevel:
        ORT_ENABLE_ALL = "all"

    class ExecutionMode:
        ORT_SEQUENTIAL = "sequential"

    def __init__(self, refuse_global: bool = False):
        self.global_calls, self.refuse_global = [], refuse_global

    def set_global_thread_pool_sizes(self, intra, inter):
        if self.refuse_global:
            raise RuntimeError("Global thread pools have already been created, cannot replace them")
        self.global_calls.append((intra, inter))


@pytest.fixture
def fresh_process_state(monkeypatch):
    monkeypatch.setattr(ort_threads, "_process_pool_threads", None)


def test_session_pools_set_the_threads_per_session(fresh_process_state):
    ort = _FakeOrt()
    options = ort_threads.session_options(ort, 3, "session")
    assert options.use_per_session_threads and options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1 and options.execution_mode == "sequential"
    assert ort_threads.session_options(ort, None, "session").intra_op_num_threads == 0  # ORT's default
    assert ort.global_calls == [] and ort_threads.process_pool_threads() is None


def test_process_pool_is_made_once_then_shared_and_never_resized(fresh_process_state):
    ort = _FakeOrt()
    first = ort_threads.session_options(ort, 2, "process")
    second = ort_threads.session_options(ort, 2, "process")
    assert not first.use_per_session_threads and not second.use_per_session_threads
    assert first.intra_op_num_threads == 0 and not hasattr(first, "inter_op_num_threads")  # ORT warns if set
    assert ort.global_calls == [(2, 1)] and ort_threads.process_pool_threads() == 2
    with pytest.raises(ValueError, match="has 2 intra-op threads and cannot be resized: pass threads=2"):
        ort_threads.session_options(ort, 1, "process")
    with pytest.raises(ValueError, match="refuses sessions with their own pool: use thread_pool='process'"):
        ort_threads.session_options(ort, 2, "session")
    assert ort.global_calls == [(2, 1)]


def test_process_pool_made_by_other_code_and_bad_names(fresh_process_state):
    with pytest.raises(ValueError, match="already made by other code in this process and cannot be resized"):
        ort_threads.session_options(_FakeOrt(refuse_global=True), 2, "process")
    assert ort_threads.process_pool_threads() is None  # nothing recorded: the call did not take
    with pytest.raises(ValueError, match="thread_pool must be one of session, process, got 'global'"):
        ort_threads.session_options(_FakeOrt(), 2, "global")


_CHILD = textwrap.dedent("""
    import json, os, sys
    import onnxruntime as ort
    from paddlepalm.deploy import Predictor
    from tests.deploy_fixtures import CLS_TEXTS, SLOT_TEXTS
    model_dir = sys.argv[1]
    texts = {"cls": CLS_TEXTS, "slot": SLOT_TEXTS}
    out = {}
    before = Predictor(model_dir, threads=2)                     # per-session pools, made first
    out["session"] = {t: before.predict(t, texts[t]) for t in texts}
    shared = Predictor(model_dir, threads=2, thread_pool="process")
    again = Predictor(model_dir, precision="int8", threads=2, thread_pool="process")  # joins the same pool
    out["process"] = {t: shared.predict(t, texts[t]) for t in texts}
    out["process_int8_runs"] = bool(again.predict("cls", texts["cls"]))
    out["session_after"] = {t: before.predict(t, texts[t]) for t in texts}  # sessions made before still run
    for name, make in (("resize", lambda: Predictor(model_dir, threads=1, thread_pool="process")),
                       ("own_pool_after", lambda: Predictor(model_dir, threads=2))):
        try:
            make(); out[name] = "no error"
        except ValueError as e:
            out[name] = str(e)
    try:  # the rule the docs state: ORT itself refuses a default-options session from now on
        from paddlepalm.deploy.predictor import read_manifest
        graph = os.path.join(shared.export_dir, read_manifest(shared.export_dir)["tasks"]["cls"]["onnx"])
        ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
        out["plain_ort_session"] = "no error"
    except Exception as e:
        out["plain_ort_session"] = str(e)
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")
    pytest.importorskip("paddle2onnx", reason="the [onnx] extra (paddle2onnx) is not installed")
    from paddlepalm.deploy import export
    from tests.deploy_fixtures import build_model

    root = str(tmp_path_factory.mktemp("ort_threads"))
    model_dir = build_model(root)
    export(model_dir, int8=True, log=lambda _: None)
    return model_dir


def _run_child(script: str, model_dir: str):
    """(the script's last ``RESULT ...`` line without the prefix, its stderr), in a fresh Python."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script, model_dir], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return lines[-1][len("RESULT "):], proc.stderr


def test_process_pool_predictor_answers_like_session_pools_in_a_real_process(exported_model):
    result, stderr = _run_child(_CHILD, exported_model)
    out = json.loads(result)
    assert out["process"] == out["session"] == out["session_after"]
    assert len(out["process"]["slot"]) == len(SLOT_TEXTS) and out["process_int8_runs"]
    assert "cannot be resized: pass threads=2" in out["resize"]
    assert "use thread_pool='process' here too" in out["own_pool_after"]
    assert "use_per_session_threads must be false" in out["plain_ort_session"]
    assert "ignored when using a global thread pool" not in stderr  # no pool sizes set on shared sessions


_CHILD_OTHER_CODE = textwrap.dedent("""
    import sys
    import onnxruntime as ort
    from paddlepalm.deploy import Predictor
    ort.set_global_thread_pool_sizes(1, 1)  # another library of the process made ORT's global pool
    try:
        Predictor(sys.argv[1], threads=1)
        print("RESULT no error")
    except ValueError as e:
        print("RESULT " + str(e))
""")


def test_session_pools_after_other_code_made_the_global_pool_get_a_clear_error(exported_model):
    message, _ = _run_child(_CHILD_OTHER_CODE, exported_model)
    assert "model.onnx: ONNX Runtime refused a session with its own thread pool" in message, message
    assert "use thread_pool='process'" in message
