"""Export for serving: one ``paddle.jit.save`` inference model per task (shared encoder + head),
and :class:`Predictor`, which runs them without the training code.

``<dir>/<task>/model.*`` is the static model; ``<dir>/<task>/inference.json`` names its inputs
and outputs; ``<dir>/tokenizer/`` and ``<dir>/paddlepalm_export.json`` let the predictor tokenize
raw text the same way as the task's reader.
"""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

EXPORT_FILE = "paddlepalm_export.json"


# paddle.jit.to_static needs a forward with a fixed, named signature and real source code (no
# *args), so the wrapper picks one of these by the number of inputs the task's batches have.
def _forward_1(self, a):
    return self.run_inputs([a])


def _forward_2(self, a, b):
    return self.run_inputs([a, b])


def _forward_3(self, a, b, c):
    return self.run_inputs([a, b, c])


def _forward_4(self, a, b, c, d):
    return self.run_inputs([a, b, c, d])


def _forward_5(self, a, b, c, d, e):
    return self.run_inputs([a, b, c, d, e])


def _forward_6(self, a, b, c, d, e, f):
    return self.run_inputs([a, b, c, d, e, f])


def _forward_7(self, a, b, c, d, e, f, g):
    return self.run_inputs([a, b, c, d, e, f, g])


def _forward_8(self, a, b, c, d, e, f, g, h):
    return self.run_inputs([a, b, c, d, e, f, g, h])


_FORWARDS = [None, _forward_1, _forward_2, _forward_3, _forward_4, _forward_5, _forward_6, _forward_7,
             _forward_8]


def _wrapper(backbone, head, input_names: Sequence[str], output_names: Sequence[str]):
    import paddle

    from paddlepalm.forward import run_task

    if len(input_names) >= len(_FORWARDS):
        raise ValueError("export supports at most %d inputs, the task has %d: %s"
                         % (len(_FORWARDS) - 1, len(input_names), ", ".join(input_names)))

    class TaskModel(paddle.nn.Layer):
        """Encoder + head as one Layer with positional tensor inputs (for paddle.jit.save)."""

        forward = _FORWARDS[len(input_names)]

        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = head

        def run_inputs(self, inputs):
            batch = dict(zip(input_names, inputs))
            out = run_task(self.backbone, self.head, batch)
            return tuple(out[name] for name in output_names)

    return TaskModel()


class _ReadRecorder(dict):
    """A batch dict that remembers which fields were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key in self:
            self.read.add(key)
        return super().get(key, default)


# raw inputs to trace a reader's batches with when it holds no examples: a text, then a text pair
# (match readers and MRC's (question, context))
_SAMPLE_INPUTS = (["hello world", "play some jazz music"], [("hello world", "how are you"), ("what", "hello world")])


def _sample_batch(reader) -> Dict[str, np.ndarray]:
    """One predict-phase batch of two rows, from the reader's examples or from sample inputs."""
    if reader.examples:
        return next(iter(reader.clone("predict").load_examples(reader.examples[:2], 2).iterator(num_epochs=1)))
    error = None
    for inputs in _SAMPLE_INPUTS:
        other = reader.clone("predict")
        try:
            return next(iter(other.load_examples(other.make_examples(inputs), 2).iterator(num_epochs=1)))
        except (ValueError, KeyError, TypeError) as e:  # this reader wants the other kind of input
            error = e
    raise ValueError("cannot make a sample batch to trace %s: %s" % (type(reader).__name__, error))


def export_task(backbone, head, reader, path: str) -> Dict[str, List[str]]:
    """Trace ``backbone`` + ``head`` for ``reader``'s batches and save a static inference model."""
    import paddle

    from paddlepalm.forward import NON_TENSOR_FIELDS, outputs_to_numpy, run_task, to_tensors

    sample = _sample_batch(reader)
    label_fields = set(getattr(head, "label_fields", ()))
    candidates = [k for k in sample if k not in NON_TENSOR_FIELDS and k not in label_fields]
    backbone.eval()
    head.eval()
    seen = _ReadRecorder(to_tensors({k: sample[k] for k in candidates}))
    with paddle.no_grad():
        reference = outputs_to_numpy(run_task(backbone, head, seen))
    # only the fields the encoder and head read at inference become inputs of the static graph
    input_names = [k for k in candidates if k in seen.read]
    output_names = sorted(reference)
    model = _wrapper(backbone, head, input_names, output_names)
    specs = [paddle.static.InputSpec(shape=[None] * sample[k].ndim, dtype=str(sample[k].dtype), name=k)
             for k in input_names]
    os.makedirs(path, exist_ok=True)
    static = paddle.jit.to_static(model, input_spec=specs, full_graph=True)
    paddle.jit.save(static, os.path.join(path, "model"))
    info = {"inputs": input_names, "outputs": output_names}
    with open(os.path.join(path, "inference.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info


def export_model(engine, path: str) -> str:
    """Export every task of a (Multi)Trainer engine, atomically, into ``path``."""
    from paddlepalm.utils.atomic_dir import atomic_directory
    from paddlepalm.artifact import task_definition

    def write(tmp):
        tasks = {}
        for t in engine.trainers:
            backbone, head = engine.inference_modules(t)
            reader = t.reader or t.predict_reader or t.dev_reader
            tasks[t.name] = dict(task_definition(t), **export_task(backbone, head, reader, os.path.join(tmp, t.name)))
        engine.tokenizer.save(os.path.join(tmp, "tokenizer"))
        with open(os.path.join(tmp, EXPORT_FILE), "w", encoding="utf-8") as f:
            json.dump({"tasks": tasks}, f, indent=2, ensure_ascii=False)

    return atomic_directory(path, write)


class Predictor:
    """Runs an exported task model on raw inputs or on ready batches.

    ``backend='jit'`` (default) runs the program with ``paddle.jit.load``. ``backend='inference'``
    runs it with Paddle Inference (IR optimisation passes); on CPU, ``precision='bf16'`` adds
    oneDNN with bfloat16 GEMMs, which on CPUs with AMX / AVX512-BF16 gave 1.8-2.8x the dygraph
    throughput at batch 64 on MiniLM-L6 (and no gain at batch 1-8, where oneDNN's per-shape
    overheads dominate); logits then differ from fp32 by ~1e-3 (benchmarks/RESULTS.md).
    """

    def __init__(self, path: str, task: str, backend: str = "jit", precision: str = "fp32",
                 threads: Optional[int] = None):
        import paddle

        with open(os.path.join(path, EXPORT_FILE), encoding="utf-8") as f:
            self.spec = json.load(f)["tasks"][task]
        if backend not in ("jit", "inference"):
            raise ValueError("backend must be 'jit' or 'inference', got %r" % backend)
        if precision not in ("fp32", "bf16") or (precision == "bf16" and backend != "inference"):
            raise ValueError("precision must be 'fp32', or 'bf16' with backend='inference', got %r" % precision)
        self.path, self.task, self.backend, self.precision = path, task, backend, precision
        self.model = self._inference = None
        if backend == "jit":
            self.model = paddle.jit.load(os.path.join(path, task, "model"))
            self.model.eval()
        else:
            self._inference = _inference_predictor(os.path.join(path, task, "model"), precision, threads)

    def run(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """A padded batch (numpy dict, as readers make) -> output name -> numpy array."""
        import paddle

        if self._inference is not None:
            return dict(zip(self.spec["outputs"], run_inference(self._inference, batch)))
        with paddle.no_grad():
            outs = self.model(*[paddle.to_tensor(batch[k]) for k in self.spec["inputs"]])
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        return {name: o.numpy() for name, o in zip(self.spec["outputs"], outs)}


def run_inference(predictor, batch: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """One Paddle Inference run: feed ``batch``, run, fetch the outputs in the predictor's order.

    Paddle Inference (3.3) sets MKL's and OpenMP's thread count for its run and leaves it at 1
    afterwards, which made every later Paddle op of the process (a dygraph model in the same
    process: 452 -> 254 texts/s at 2 threads) single-threaded; the process's count is put back.
    """
    from paddlepalm._env import process_num_threads

    threads = process_num_threads()
    for name in predictor.get_input_names():
        predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(batch[name]))
    try:
        predictor.run()
    finally:
        if threads:
            import paddle

            paddle.base.core.set_num_threads(threads)
    return [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]


def _inference_predictor(prefix: str, precision: str, threads: Optional[int]):
    """A Paddle Inference predictor for ``<prefix>.json|.pdmodel`` + ``<prefix>.pdiparams``."""
    import paddle
    from paddle import inference

    model_file = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
    config = inference.Config(model_file, prefix + ".pdiparams")
    config.switch_ir_optim(True)
    config.disable_glog_info()
    if paddle.is_compiled_with_cuda() and paddle.device.get_device().startswith("gpu"):
        if precision == "bf16":
            raise ValueError("precision='bf16' is a CPU (oneDNN) option; on GPU use fp32")
        config.enable_use_gpu(256, int(paddle.device.get_device().split(":")[-1]))
    else:
        config.disable_gpu()
        if threads:
            config.set_cpu_math_library_num_threads(int(threads))
        if precision == "bf16":
            config.enable_mkldnn()
            config.enable_mkldnn_bfloat16()
        else:  # measured: oneDNN fp32 is slower than plain CPU kernels at batch 1-8 and equal at 64
            config.disable_mkldnn()
    return inference.create_predictor(config)
