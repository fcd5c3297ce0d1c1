"""int8 dynamic quantization of an exported ONNX model (ONNX Runtime's quantization tools).

Weights of MatMul/Gemm become int8 once; activations are quantized per batch at run time, so no
calibration data is needed. Accuracy must still be checked: :func:`compare_precisions` scores the
fp32 and the int8 model on a labelled dev file with the task's own metrics.

Padding rows are zeroed before each token-level activation is quantized (:func:`zero_padding_rows`),
so a text's int8 answer does not depend on how much padding its batch carries.
"""
import logging
from typing import Dict, List, Optional

INT8_WEIGHTS = ("per_tensor", "per_channel")
INT8_PADDING = ("zeroed", "kept")
ZERO_PADDING_PREFIX = "palm_zero_padding"  # names of the nodes zero_padding_rows adds


def _one_of(what: str, value: str, choices) -> str:
    if value not in choices:
        raise ValueError("int8 %s %r: choose %s" % (what, value, " or ".join(choices)))
    return value


def check_int8_weights(weights: str) -> str:
    """``weights`` if it is one of :data:`INT8_WEIGHTS`, else a ValueError naming the choices."""
    return _one_of("weights", weights, INT8_WEIGHTS)


def check_int8_padding(padding: str) -> str:
    """``padding`` if it is one of :data:`INT8_PADDING`, else a ValueError naming the choices."""
    return _one_of("padding", padding, INT8_PADDING)


def zeroed_padding_inputs(path: str) -> int:
    """How many quantized inputs of the ONNX model at ``path`` :func:`zero_padding_rows` masked."""
    import onnx

    return sum(n.op_type == "Mul" and n.name.startswith(ZERO_PADDING_PREFIX) for n in onnx.load(path).graph.node)


def quantize_int8(src: str, dst: str, weights: str = "per_tensor", zero_padding: bool = True) -> str:
    """Write the dynamically int8-quantized copy of ONNX model ``src`` to ``dst``.

    ``weights``: one int8 scale per weight matrix (``'per_tensor'``, the default) or one per
    output column (``'per_channel'``). ``zero_padding``: apply :func:`zero_padding_rows`
    (default). With both defaults, three SNIPS flagship models (seeds 0-2, 700 test utterances)
    kept slot F1 within 0.36 pt of fp32 at batch 1, 8 and 32 (0.63 without the zeroing);
    docs/deploy.md has the tables.
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
    if zero_padding:
        import onnx

        model = onnx.load(dst)
        if zero_padding_rows(model, onnx.load(src)):
            onnx.save(model, dst)
    return dst


def zero_padding_rows(int8_model, fp32_model) -> int:
    """Multiply each token-level input of a ``DynamicQuantizeLinear`` in ``int8_model`` by the
    padding mask, in place; returns how many inputs were masked.

    Dynamic quantization takes one scale per activation tensor from its range over the whole
    batch, padding positions included. Their rows never reach a real token (attention masks them),
    but they widened that range and so coarsened every real token's int8 grid: on a SNIPS flagship
    model the same 700 test utterances lost 0.63 pt of slot F1 at batch 32 against 0.14 at
    batch 1 (0.36 at 32 with the zeroing). Zero rows leave the range alone (it always includes
    0). Token-level means shaped ``[B, T, H]`` like the mask, by ONNX Runtime's symbolic shape
    inference on ``fp32_model`` (the same graph before quantization); a graph whose attention
    mask or shapes cannot be found is left as it is.
    """
    from onnx import TensorProto, helper

    from paddlepalm.deploy.onnx_fusion import padding_mask_input

    mask = padding_mask_input(fp32_model)
    shapes = _symbolic_shapes(fp32_model) if mask else {}
    mask_dims = shapes.get(mask)
    if not mask_dims or len(mask_dims) != 2 or not all(mask_dims):  # unknown dims (0) would match anything
        return 0
    graph = int8_model.graph
    masked: List = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear"
                    and len(shapes.get(n.input[0], ())) == 3 and shapes[n.input[0]][:2] == mask_dims]
    if not masked:
        return 0
    rows = "%s_rows" % ZERO_PADDING_PREFIX
    opset = max((o.version for o in int8_model.opset_import if o.domain in ("", "ai.onnx")), default=13)
    prologue = [helper.make_node("Cast", [mask], ["%s_float" % ZERO_PADDING_PREFIX], to=TensorProto.FLOAT,
                                 name="%s_cast" % ZERO_PADDING_PREFIX)]
    if opset >= 13:  # Unsqueeze's axes became an input in opset 13
        axes = "%s_axes" % ZERO_PADDING_PREFIX
        graph.initializer.append(helper.make_tensor(axes, TensorProto.INT64, [1], [2]))
        prologue.append(helper.make_node("Unsqueeze", [prologue[0].output[0], axes], [rows],
                                         name="%s_unsqueeze" % ZERO_PADDING_PREFIX))
    else:
        prologue.append(helper.make_node("Unsqueeze", [prologue[0].output[0]], [rows], axes=[2],
                                         name="%s_unsqueeze" % ZERO_PADDING_PREFIX))
    nodes = list(prologue)
    masked_ids = {id(n): i for i, n in enumerate(masked)}
    for node in graph.node:
        if id(node) in masked_ids:
            zeroed = "%s__%s" % (node.input[0], ZERO_PADDING_PREFIX)
            nodes.append(helper.make_node("Mul", [node.input[0], rows], [zeroed],  # [B, T, H] * [B, T, 1]
                                          name="%s_%d" % (ZERO_PADDING_PREFIX, masked_ids[id(node)])))
            node.input[0] = zeroed
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(masked)


def _symbolic_shapes(model) -> Dict[str, list]:
    """``{tensor: [dim, ...]}`` (symbolic names or numbers) for ``model``'s inputs and every tensor
    ONNX Runtime's symbolic shape inference can follow; ``{}`` where it cannot."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
    except Exception as error:  # noqa: BLE001 -- an optional rewrite: say why and quantize without it
        logging.getLogger(__name__).warning("int8: no symbolic shapes (%s); padding rows are not zeroed", error)
        return {}
    values = list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


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
