"""Export a saved model's tasks for deployment engines.

``export(model_dir, formats=("onnx",))`` writes, atomically, ``<out>`` (default
``<model_dir>/export``)::

    <out>/paddlepalm_deploy.json      per task: graph inputs/outputs and file names
    <out>/<task>/model.json|.pdiparams  the static Paddle program (Paddle Inference)
    <out>/<task>/model.onnx             the same graph in ONNX (through paddle2onnx)
    <out>/<task>/model.int8.onnx        with ``int8=True``: dynamically quantized weights

One graph per task (shared encoder + that task's head). Batch and sequence axes are dynamic and
the graph's inputs are only the batch fields the encoder and head read (see
:func:`paddlepalm.deploy.paddle_export.export_task`). Readers, heads and the tokenizer stay in the
model directory: :class:`~paddlepalm.deploy.predictor.Predictor` reads both.
"""
import json
import os
from typing import Callable, Dict, Optional, Sequence, Union

from paddlepalm.deploy.predictor import MANIFEST, default_export_dir

FORMATS = ("paddle", "onnx")
DEFAULT_OPSET = 13


def _to_onnx(prefix: str, dst: str, opset: int) -> str:
    try:
        import paddle2onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the [onnx] extra: pip install 'paddlepalm[onnx]'") from e
    model_file = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
    paddle2onnx.export(model_file, prefix + ".pdiparams", dst, opset_version=opset, auto_upgrade_opset=True,
                       verbose=False, enable_onnx_checker=True, enable_optimize=True)
    return dst


def export(model: Union[str, "PalmModel"], out: Optional[str] = None, formats: Sequence[str] = ("onnx",),  # noqa: F821
           tasks: Optional[Sequence[str]] = None, int8: bool = False, dev_files: Optional[Dict[str, str]] = None,
           opset: int = DEFAULT_OPSET, threads: Optional[int] = None,
           log: Callable[[str], None] = print, int8_weights: str = "per_tensor",
           int8_padding: str = "zeroed") -> str:
    """Export ``model`` (a saved model dir or a loaded ``palm.load`` model) for serving.

    ``formats``: ``'paddle'`` (static program for Paddle Inference; always written, ONNX is
    converted from it) and/or ``'onnx'``. ``int8`` adds a dynamically quantized ONNX model per
    task (``int8_weights``: ``'per_tensor'`` or ``'per_channel'`` scales, see
    :func:`~paddlepalm.deploy.quantize.quantize_int8`; ``int8_padding``: ``'zeroed'`` padding rows
    before each activation is quantized, or ``'kept'``, see
    :func:`~paddlepalm.deploy.quantize.zero_padding_rows`); with ``dev_files`` (``{task: labelled
    file}``) the fp32 and int8 models are scored on them and the comparison is printed through
    ``log`` and kept in the manifest. Returns ``out``.
    """
    from paddlepalm.deploy.paddle_export import export_task
    from paddlepalm.deploy.quantize import (check_int8_padding, check_int8_weights, compare_precisions,
                                            format_comparison, quantize_int8, zeroed_padding_inputs)
    from paddlepalm.model import PalmModel
    from paddlepalm.utils.atomic_dir import atomic_directory

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError("unknown export format %s; formats: %s" % (", ".join(unknown), ", ".join(FORMATS)))
    if int8 and "onnx" not in formats:
        raise ValueError("int8 quantization works on the ONNX model: add format 'onnx'")
    check_int8_weights(int8_weights)  # before any work is done
    check_int8_padding(int8_padding)
    if dev_files and not int8:
        raise ValueError("dev files are for the fp32-vs-int8 accuracy check: pass int8=True (--int8)")
    palm_model = model if isinstance(model, PalmModel) else PalmModel(model)
    if palm_model.backbone is None:
        raise ValueError("export needs the Paddle model: pass a model dir or palm.load(dir)")
    names = list(tasks) if tasks else palm_model.tasks
    missing = [t for t in names + list(dev_files or {}) if t not in palm_model.tasks]
    if missing:
        raise ValueError("unknown task %s; this model has %s" % (", ".join(missing), ", ".join(palm_model.tasks)))
    for task, path in (dev_files or {}).items():
        if not os.path.isfile(path):
            raise FileNotFoundError("dev file for task %r not found: %s" % (task, path))
    out = out or default_export_dir(palm_model.path)

    def write(tmp: str) -> None:
        manifest = {"format_version": 1, "tasks": {}}
        for task in names:
            folder = os.path.join(tmp, task)
            info = export_task(palm_model.backbone, palm_model.heads[task], palm_model.readers[task], folder)
            entry = dict(info, paddle="%s/model" % task)
            if "onnx" in formats:
                _to_onnx(os.path.join(folder, "model"), os.path.join(folder, "model.onnx"), opset)
                entry["onnx"] = "%s/model.onnx" % task
            if int8:
                int8_file = quantize_int8(os.path.join(folder, "model.onnx"), os.path.join(folder, "model.int8.onnx"),
                                          int8_weights, zero_padding=int8_padding == "zeroed")
                entry.update(onnx_int8="%s/model.int8.onnx" % task, int8_weights=int8_weights,
                             int8_zeroed_padding_inputs=zeroed_padding_inputs(int8_file))
            manifest["tasks"][task] = entry
            log("exported task %r: inputs %s -> %s" % (task, ", ".join(info["inputs"]),
                                                       ", ".join(sorted(f for f in os.listdir(folder)))))
        _write_manifest(tmp, manifest)
        if dev_files:
            results = compare_precisions(palm_model.path, tmp, dev_files, threads)
            log("int8 vs fp32 (ONNX Runtime) on the dev files:\n" + format_comparison(results))
            for task, by_precision in results.items():
                manifest["tasks"][task]["int8_check"] = dict(by_precision, dev_file=os.path.abspath(dev_files[task]))
            _write_manifest(tmp, manifest)

    return atomic_directory(out, write)


def _write_manifest(folder: str, manifest: dict) -> None:
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False, default=float)
