"""Graph rewrites that ONNX Runtime does not find on paddle2onnx's graphs.

``fuse_attention(model)`` replaces each self-attention block of an exported BERT-family encoder --
``Reshape``/``Transpose`` of the projected q, k, v into heads, ``q * scale``, ``q @ k^T``, the
additive padding mask, ``Softmax``, ``@ v``, ``Transpose``/``Reshape`` back -- by one
``com.microsoft.MultiHeadAttention`` node fed the projections and the integer attention mask.
ONNX Runtime's own transformer fusions expect PyTorch's export and match none of these blocks.

It is applied in memory when the ONNX Runtime ``Predictor`` loads a model; the exported files stay
standard ONNX (other runtimes can read them). A block that does not match exactly (another mask,
relative positions as in NEZHA, a scale on the scores) is left as it is, so a graph this does not
know runs unchanged.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

MS_DOMAIN = "com.microsoft"
_HEADS_PERM = [0, 2, 1, 3]


class _Graph:
    """Producer / consumer / constant look-ups over one ONNX graph."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: Dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self._initializers = {i.name: i for i in graph.initializer}
        self._to_array = numpy_helper.to_array
        self.inputs = {i.name for i in graph.input}
        self.outputs = {o.name for o in graph.output}

    def constant(self, name: str) -> Optional[np.ndarray]:
        if name in self._initializers:
            return self._to_array(self._initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return self._to_array(node.attribute[0].t)
        return None

    def scalar(self, name: str) -> Optional[float]:
        value = self.constant(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def source(self, name: str):
        """The node computing ``name``, looking through ``Identity`` nodes."""
        node = self.producer.get(name)
        while node is not None and node.op_type == "Identity":
            node = self.producer.get(node.input[0])
        return node

    def sole_consumer(self, name: str):
        """The one node reading ``name`` (through ``Identity`` nodes), else None."""
        readers = self.consumers.get(name, [])
        while len(readers) == 1 and readers[0].op_type == "Identity":
            readers = self.consumers.get(readers[0].output[0], [])
        return readers[0] if len(readers) == 1 else None


def _attr(node, name: str):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def _is_transpose(node, perm: List[int]) -> bool:
    return node is not None and node.op_type == "Transpose" and list(_attr(node, "perm") or []) == perm


def _reshape_target(g: _Graph, node, rank: int) -> Optional[np.ndarray]:
    """The constant target of a ``Reshape`` to ``[0, 0, ...]`` (batch and length kept) of ``rank`` dims."""
    if node is None or node.op_type != "Reshape":
        return None
    shape = g.constant(node.input[1])
    if shape is None or shape.shape != (rank,) or shape[0] != 0 or shape[1] != 0 or min(shape[2:]) <= 0:
        return None
    return shape


def _split_heads(g: _Graph, node) -> Optional[Tuple[str, int]]:
    """``Transpose(perm 0,2,1,3)(Reshape(x, [0, 0, H, D]))`` -> ``(x, H)``."""
    if not _is_transpose(node, _HEADS_PERM):
        return None
    reshape = g.source(node.input[0])
    shape = _reshape_target(g, reshape, 4)
    return None if shape is None else (reshape.input[0], int(shape[2]))


def _padding_mask(g: _Graph, name: str) -> Optional[Tuple[str, float]]:
    """``(graph input, filter value)`` when ``name`` is ``(1 - mask) * filter`` of a graph input
    ``mask [B, T]`` of zeros and ones, unsqueezed to ``[B, 1, 1, T]`` (scalar ``Mul``/``Add`` steps)."""
    steps: List[Tuple[str, float]] = []
    node = g.source(name)
    unsqueezed = False
    while node is not None and node.op_type in ("Mul", "Add", "Unsqueeze"):
        if node.op_type == "Unsqueeze":
            axes = _attr(node, "axes")
            if axes is None and len(node.input) > 1:
                axes = g.constant(node.input[1])
            if axes is None or sorted(int(a) for a in np.reshape(axes, -1)) != [1, 2] or unsqueezed:
                return None
            unsqueezed = True
        else:
            value = g.scalar(node.input[1])
            if value is None:
                return None
            steps.append((node.op_type, value))
        node = g.source(node.input[0])
    if not unsqueezed or node is None or node.op_type != "Cast" or node.input[0] not in g.inputs:
        return None

    def apply(x: float) -> float:
        for op, value in reversed(steps):  # steps were collected from the output back
            x = x * value if op == "Mul" else x + value
        return x

    kept, masked = apply(1.0), apply(0.0)
    if kept != 0.0 or masked > -1e4:  # a mask that leaves weight on padding is not a padding mask
        return None
    return node.input[0], masked


def _match_block(g: _Graph, softmax) -> Optional[dict]:
    """The attention block around one ``Softmax`` node, or None."""
    add = g.source(softmax.input[0])
    if add is None or add.op_type != "Add":
        return None
    scores = g.source(add.input[0])
    if scores is None or scores.op_type != "MatMul":
        return None
    mask = _padding_mask(g, add.input[1])
    q_node = g.source(scores.input[0])
    if q_node is not None and q_node.op_type == "Add" and g.scalar(q_node.input[1]) == 0.0:
        q_node = g.source(q_node.input[0])  # paddle's scale op: q * s + 0
    if q_node is None or q_node.op_type != "Mul" or g.scalar(q_node.input[1]) is None:
        return None
    scale = g.scalar(q_node.input[1])
    q = _split_heads(g, g.source(q_node.input[0]))
    k_t = g.source(scores.input[1])
    if not _is_transpose(k_t, [0, 1, 3, 2]):
        return None
    k = _split_heads(g, g.source(k_t.input[0]))
    weighted = g.sole_consumer(softmax.output[0])
    if weighted is None or weighted.op_type != "MatMul" or g.source(weighted.input[0]) is not softmax:
        return None
    v = _split_heads(g, g.source(weighted.input[1]))
    merge = g.sole_consumer(weighted.output[0])
    if not _is_transpose(merge, _HEADS_PERM):
        return None
    out = g.sole_consumer(merge.output[0])
    if _reshape_target(g, out, 3) is None:
        return None
    if mask is None or not (q and k and v) or len({q[1], k[1], v[1]}) != 1:
        return None
    if g.outputs & {scores.output[0], softmax.output[0], weighted.output[0], merge.output[0]}:
        return None  # the graph returns an intermediate (e.g. attention weights): it must stay
    return {"q": q[0], "k": k[0], "v": v[0], "heads": q[1], "scale": scale, "mask": mask, "out": out}


def padding_mask_input(model) -> Optional[str]:
    """The graph input (``[B, T]``, 1 for tokens, 0 for padding) that every matched attention block
    of ``model`` masks padding with, or None when no block matches or blocks disagree."""
    g = _Graph(model.graph)
    masks = {b["mask"][0] for b in (_match_block(g, n) for n in model.graph.node if n.op_type == "Softmax") if b}
    return masks.pop() if len(masks) == 1 else None


def fuse_attention(model) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns the number of blocks fused."""
    from onnx import TensorProto, helper

    g = _Graph(model.graph)
    blocks = [b for b in (_match_block(g, n) for n in model.graph.node if n.op_type == "Softmax") if b]
    if not blocks:
        return 0
    new_nodes, casts, replaced = [], {}, set()
    for i, b in enumerate(blocks):
        mask_input, filter_value = b["mask"]
        if mask_input not in casts:
            casts[mask_input] = "%s__int32_key_padding" % mask_input
            new_nodes.append(helper.make_node("Cast", [mask_input], [casts[mask_input]], to=TensorProto.INT32,
                                              name="palm_mask_cast_%d" % len(casts)))
        new_nodes.append(helper.make_node(
            "MultiHeadAttention", [b["q"], b["k"], b["v"], "", casts[mask_input]], [b["out"].output[0]],
            name="palm_attention_%d" % i, domain=MS_DOMAIN, num_heads=b["heads"], scale=b["scale"],
            mask_filter_value=filter_value))
        replaced.add(id(b["out"]))
    nodes = [n for n in model.graph.node if id(n) not in replaced] + new_nodes
    _replace_nodes(model.graph, _live_in_order(model.graph, nodes))
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(blocks)


def _live_in_order(graph, nodes: list) -> list:
    """The nodes some graph output depends on, in an order where inputs come first."""
    producer = {out: n for n in nodes for out in n.output}
    live, stack = set(), [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in live:
            live.add(id(node))
            stack.extend(name for name in node.input if name)
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = [n for n in nodes if id(n) in live], []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("fuse_attention: the rewritten graph has a cycle or a missing input")
        pending = waiting
    return ordered


def _replace_nodes(graph, nodes: list) -> None:
    used = {name for n in nodes for name in n.input}
    produced = {name for n in nodes for name in n.output}
    kept = [i for i in graph.initializer if i.name in used]
    shapes = [v for v in graph.value_info if v.name in produced]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    graph.value_info.extend(shapes)
