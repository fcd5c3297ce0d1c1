"""int8 dynamic quantization of an exported ONNX model (ONNX Runtime's quantization tools).

Weights of MatMul/Gemm become int8 once; activations are quantized per batch at run time, so no
calibration data is needed. Accuracy must still be checked: :func:`compare_precisions` scores the
fp32 and the int8 model on a labelled dev file with the task's own metrics.
"""
import logging
from typing import Dict, Optional

INT8_WEIGHTS = ("per_tensor", "per_channel")


def check_int8_weights(weights: str) -> str:
    """``weights`` if it is one of :data:`INT8_WEIGHTS`, else a ValueError naming the choices."""
    if weights not in INT8_WEIGHTS:
        raise ValueError("int8 weights %r: choose %s" % (weights, " or ".join(INT8_WEIGHTS)))
    return weights


def quantize_int8(src: str, dst: str, weights: str = "per_tensor") -> str:
    """Write the dynamically int8-quantized copy of ONNX model ``src`` to ``dst``.

    ``weights``: one int8 scale per weight matrix (``'per_tensor'``, the default) or one per
    output column (``'per_channel'``). On three SNIPS flagship models (seeds 0-2, 700 test
    utterances) per-tensor weights kept slot F1 within 0.28 pt of fp32 at batch 1 and 32 (mean
    -0.21), per-channel within 0.68 pt (mean -0.17, but -0.68 on one model at batch 32);
    docs/deploy.md has the table.
    """
    check_int8_weights(weights)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError("int8 quantization needs the [onnx] extra: pip install 'paddlepalm[onnx]'") from e
    # MatMul/Gemm only (the encoder's GEMMs: where the time goes)
    logging.disable(logging.INFO)  # the quantizer logs a line per tensor
    try:
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=weights == "per_channel",
                         op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        logging.disable(logging.NOTSET)
    return dst


def compare_precisions(model_dir: str, export_dir: str, dev_files: Dict[str, str],
                       threads: Optional[int] = None) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{task: {"fp32": metrics, "int8": metrics}}`` for each ``task -> dev file``."""
    from paddlepalm.deploy.predictor import Predictor

    results = {}
    for precision in ("fp32", "int8"):
        predictor = Predictor(model_dir, "onnxruntime", precision, threads=threads, export_dir=export_dir)
        for task, path in dev_files.items():
            results.setdefault(task, {})[precision] = predictor.evaluate(task, path)
    return results


def format_comparison(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """A plain-text table: task, metric, fp32, int8, int8 - fp32 (points)."""
    lines = ["%-12s %-16s %9s %9s %9s" % ("task", "metric", "fp32", "int8", "diff pt")]
    for task, by_precision in results.items():
        for metric, fp32 in by_precision["fp32"].items():
            int8 = by_precision["int8"].get(metric)
            if isinstance(fp32, (int, float)) and isinstance(int8, (int, float)):
                lines.append("%-12s %-16s %9.2f %9.2f %+9.2f" % (task, metric, 100 * fp32, 100 * int8,
                                                              100 * (int8 - fp32)))
    return "\n".join(lines)
