"""``Predictor``: a saved model's tasks on a deployment engine, with ``palm.load``'s pre- and
post-processing (tokenizer, label names, CRF Viterbi with the saved transitions, MRC n-best).

Engines (``backend=``), registered in :data:`BACKENDS`:

* ``dygraph``: the Paddle model itself, exactly :class:`paddlepalm.model.PalmModel`;
* ``inference``: Paddle Inference on the exported static programs (``<export>/<task>/model.*``);
* ``onnxruntime``: ONNX Runtime on ``<export>/<task>/model.onnx`` (``precision='int8'``:
  ``model.int8.onnx``, see :mod:`paddlepalm.deploy.quantize`).

Only the encoder+head forward changes engine: readers and heads come from the model directory,
so every backend answers in the same format as ``palm.load(dir).predict``.
"""
import contextlib
import importlib.util
import json
import os
import threading
from typing import Any, Callable, Dict, Optional

import numpy as np

from paddlepalm.deploy import ort_threads
from paddlepalm.errors import CheckpointError
from paddlepalm.model import PalmModel

MANIFEST = "paddlepalm_deploy.json"
DEFAULT_EXPORT_DIR = "export"


def default_export_dir(model_dir: str) -> str:
    return os.path.join(model_dir, DEFAULT_EXPORT_DIR)


def read_manifest(export_dir: str) -> Dict[str, Any]:
    path = os.path.join(export_dir, MANIFEST)
    if not os.path.isfile(path):
        raise CheckpointError("%s: no exported models (missing %s); run 'paddlepalm export MODEL_DIR --format onnx'"
                              % (export_dir, MANIFEST))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class _Engine:
    """Runs one task's exported graph on a padded numpy batch."""

    def __init__(self, export_dir: str, task: str, spec: Dict[str, Any], precision: str, threads: Optional[int]):
        self.inputs, self.outputs = spec["inputs"], spec["outputs"]

    def run(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError


class _OnnxRuntimeEngine(_Engine):
    """One ``InferenceSession`` per task, created once; ``run`` is thread-safe (ORT sessions are).

    ``disabled_optimizers``: ORT graph rewrites left out. ``SkipLayerNormFusion`` (residual add +
    LayerNormalization -> one ``SkipLayerNormalization``) made the SNIPS MiniLM-L6 export slower
    on CPU with ONNX Runtime 1.32 at one thread: its kernel took 14% of an fp32 and 28% of an int8
    run (13 nodes), and without the fusion a batch of 32 ran 1.14x (fp32) / 1.38x (int8) faster,
    batch 1 1.03x / 1.3x (paired alternating runs); fp32 outputs move by ~4e-6.

    ``thread_pool``: ``'session'`` (its own intra-op pool) or ``'process'`` (ONNX Runtime's one
    process-wide pool), see :mod:`paddlepalm.deploy.ort_threads`.

    ``fuse_attention``: each attention block of the encoder becomes one ``MultiHeadAttention``
    node at load (:mod:`paddlepalm.deploy.onnx_fusion`; the file on disk is unchanged; needs the
    ``onnx`` package); ``fused_attention_blocks`` says how many matched.
    """

    precisions = ("fp32", "int8")
    disabled_optimizers = ("SkipLayerNormFusion",)

    def __init__(self, export_dir, task, spec, precision, threads, fuse_attention: bool = True,
                 thread_pool: str = "session"):
        super().__init__(export_dir, task, spec, precision, threads)
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the extra
            raise ImportError("backend='onnxruntime' needs the [onnx] extra: pip install 'paddlepalm[onnx]'") from e
        key = "onnx" if precision == "fp32" else "onnx_int8"
        if not spec.get(key):
            raise CheckpointError("%s: task %r has no %s ONNX model; export with --format onnx%s"
                                  % (export_dir, task, precision, " --int8" if precision == "int8" else ""))
        options = ort_threads.session_options(ort, threads, thread_pool)
        path = os.path.join(export_dir, spec[key])
        self.fused_attention_blocks = 0
        graph = path
        if fuse_attention and importlib.util.find_spec("onnx") is not None:  # onnx: the [onnx] extra
            import onnx

            from paddlepalm.deploy import onnx_fusion

            model = onnx.load(path)
            self.fused_attention_blocks = onnx_fusion.fuse_attention(model)
            if self.fused_attention_blocks:
                graph = model.SerializeToString()
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"],
                                                disabled_optimizers=list(self.disabled_optimizers))
        except RuntimeError as e:
            if "global thread pool" not in str(e):
                raise
            raise ValueError("%s: ONNX Runtime refused a session with its own thread pool: other code in this "
                             "process made ONNX Runtime's global pool; use thread_pool='process'" % path) from e
        graph_inputs = {i.name: _ORT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        if sorted(graph_inputs) != sorted(self.inputs):
            raise CheckpointError("%s: ONNX inputs %s differ from the manifest's %s" % (
                spec[key], ", ".join(sorted(graph_inputs)), ", ".join(sorted(self.inputs))))
        self._types = graph_inputs
        # paddle2onnx names outputs itself; their order is the exported program's (= the manifest's)
        self._graph_outputs = [o.name for o in self.session.get_outputs()]

    def run(self, batch):
        feed = {k: np.ascontiguousarray(batch[k], dtype=self._types[k]) for k in self.inputs}
        return dict(zip(self.outputs, self.session.run(self._graph_outputs, feed)))


_ORT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
              "tensor(bool)": np.bool_}


class _PaddleInferenceEngine(_Engine):
    """A Paddle Inference predictor per task; predictors are not thread-safe, so runs take a lock."""

    precisions = ("fp32", "bf16")

    def __init__(self, export_dir, task, spec, precision, threads):
        super().__init__(export_dir, task, spec, precision, threads)
        from paddlepalm.deploy.paddle_export import _inference_predictor

        self.predictor = _inference_predictor(os.path.join(export_dir, spec["paddle"]), precision, threads)
        self._lock = threading.Lock()

    def run(self, batch):
        from paddlepalm.deploy.paddle_export import run_inference

        with self._lock:
            outs = run_inference(self.predictor, batch)
        return dict(zip(self.outputs, outs))


BACKENDS: Dict[str, Optional[Callable[..., _Engine]]] = {
    "dygraph": None,  # the Paddle model itself (palm.load)
    "inference": _PaddleInferenceEngine,
    "onnxruntime": _OnnxRuntimeEngine,
}


class Predictor(PalmModel):
    """``Predictor(model_dir, backend='onnxruntime', precision='fp32', threads=None, fuse_attention=True,
    thread_pool='session')``.

    ``predict(task, texts)`` answers exactly like ``palm.load(model_dir).predict``. ``export_dir``
    defaults to ``<model_dir>/export`` (what ``paddlepalm export MODEL_DIR`` writes). ``threads``
    sets the engine's intra-op threads (dygraph: ``paddle``'s CPU math threads). Thread-safe; the
    ONNX Runtime backend runs concurrent calls in parallel, the others serialise them.
    ``fuse_attention`` (ONNX Runtime): one ``MultiHeadAttention`` node per attention block, built
    at load (:mod:`paddlepalm.deploy.onnx_fusion`); False runs the exported graph as it is.
    ``thread_pool`` (ONNX Runtime): ``'session'`` gives each task's session its own intra-op pool;
    ``'process'`` runs every session of the process on ONNX Runtime's one global pool, faster at
    small batches beside other sessions, but one thread count per process and ORT then refuses
    sessions with their own pool (:mod:`paddlepalm.deploy.ort_threads`).
    """

    def __init__(self, model_dir: str, backend: str = "onnxruntime", precision: str = "fp32",
                 threads: Optional[int] = None, export_dir: Optional[str] = None, fuse_attention: bool = True,
                 thread_pool: str = "session"):
        if backend not in BACKENDS:
            raise ValueError("backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
        if ort_threads.check_thread_pool(thread_pool) != "session" and backend != "onnxruntime":
            raise ValueError("thread_pool=%r is an ONNX Runtime setting; backend %r has no thread pools to share"
                             % (thread_pool, backend))
        engine_cls = BACKENDS[backend]
        allowed = engine_cls.precisions if engine_cls else ("fp32",)
        if precision not in allowed:
            raise ValueError("backend %r supports precision %s, got %r" % (backend, ", ".join(allowed), precision))
        self.backend, self.precision, self.threads, self.thread_pool = backend, precision, threads, thread_pool
        if engine_cls is None and threads:
            from paddle.base import core

            core.set_num_threads(int(threads))  # the CPU math library's threads, process-wide
        super().__init__(model_dir)  # resolves a training output folder to its model (self.path)
        self.export_dir = export_dir or default_export_dir(self.path)
        self.engines: Dict[str, _Engine] = {}
        if engine_cls is not None:
            manifest = read_manifest(self.export_dir)
            for task in self.tasks:
                if task not in manifest["tasks"]:
                    raise CheckpointError("%s: task %r was not exported" % (self.export_dir, task))
                options = ({"fuse_attention": fuse_attention, "thread_pool": thread_pool}
                           if backend == "onnxruntime" else {})
                self.engines[task] = engine_cls(self.export_dir, task, manifest["tasks"][task], precision, threads,
                                                **options)
            if backend == "onnxruntime":
                self._lock = contextlib.nullcontext()  # sessions are thread-safe; readers are per call

    def _load_backbone(self, backbone_dir: str):
        return super()._load_backbone(backbone_dir) if BACKENDS[self.backend] is None else None

    def _runs_on_cpu(self) -> bool:
        return self.backend == "onnxruntime" or super()._runs_on_cpu()  # sessions use the CPU provider

    def _engine_forward(self, task: str):
        engine = self.engines.get(task)
        return engine.run if engine is not None else None

    def run(self, task: str, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """A padded numpy batch (as the task's reader makes) -> the head's raw outputs."""
        if task not in self.readers:
            raise KeyError("unknown task %r; this model has %s" % (task, ", ".join(self.tasks)))
        if task in self.engines:
            return self.engines[task].run(batch)
        from paddlepalm.engine.inference import infer_outputs

        with self._lock:
            return infer_outputs(self.backbone, self.heads[task], batch)
