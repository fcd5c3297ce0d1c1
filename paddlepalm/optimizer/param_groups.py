"""Which parameters decay, and each parameter's learning-rate multiplier (layer-wise decay).

Parameter names are the trainer's structured names: ``backbone.embeddings...``,
``backbone.encoder.layers.<i>...``, ``backbone.pooler...``, ``heads.<task>...``.
"""
import re
from typing import Dict, Iterable, Optional, Set, Tuple

NO_DECAY = re.compile(r"(\.bias$|norm|layer_norm|LayerNorm|\.b_0$|^balancing\.)")  # balancer weights: no decay
_LAYER = re.compile(r"^backbone\.encoder\.layers\.(\d+)\.")


def decay_names(names: Iterable[str]) -> Set[str]:
    """Names that get weight decay: everything but biases and LayerNorm parameters."""
    return {n for n in names if not NO_DECAY.search(n)}


def layer_depth(name: str, num_layers: int) -> int:
    """0 for embeddings, i+1 for encoder layer i, num_layers+1 for the pooler and the heads."""
    if name.startswith("backbone.embeddings."):
        return 0
    match = _LAYER.match(name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def lr_multipliers(names: Iterable[str], num_layers: int, layer_decay: Optional[float] = None,
                   head_lr_ratio: Optional[float] = None) -> Dict[str, float]:
    """LR factor per parameter: ``layer_decay ** (num_layers + 1 - depth)``; heads may differ."""
    out = {}
    for name in names:
        mult = 1.0
        if layer_decay is not None and name.startswith("backbone."):
            mult = layer_decay ** (num_layers + 1 - layer_depth(name, num_layers))
        if head_lr_ratio is not None and name.startswith("heads."):
            mult = head_lr_ratio
        out[name] = mult
    return out


def split(named_params: Iterable[Tuple[str, object]]):
    names, params = [], []
    for n, p in named_params:
        if getattr(p, "stop_gradient", False):
            continue
        names.append(n)
        params.append(p)
    return names, params
