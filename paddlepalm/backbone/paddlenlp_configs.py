"""Configs of the ERNIE 3.0 checkpoints PaddleNLP publishes as bare ``.pdparams`` files.

PaddleNLP keeps these configs in its code (``paddlenlp/transformers/ernie/configuration.py``),
not beside the weights, so a downloaded ``ernie_3.0_base_zh.pdparams`` arrives without one. The
values below are those published hyper-parameters, keyed by the weights file's name; the
PaddleNLP reader uses them when a folder has the weights but no ``model_config.json``.
"""
from typing import Any, Dict, Optional

# file stem: (layers, hidden, heads, ffn, task_type_vocab_size, use_task_id)
_ERNIE3 = {
    "ernie_3.0_xbase_zh": (20, 1024, 16, 4096, 16, True),
    "ernie_3.0_base_zh": (12, 768, 12, 3072, 3, True),
    "ernie_3.0_medium_zh": (6, 768, 12, 3072, 16, True),
    "ernie_3.0_mini_zh": (6, 384, 12, 1536, 16, True),
    "ernie_3.0_micro_zh": (4, 384, 12, 1536, 16, True),
    "ernie_3.0_nano_zh": (4, 312, 12, 1248, 16, True),
    "ernie_3.0_tiny_base_v2": (12, 768, 12, 3072, 3, False),
    "ernie_3.0_tiny_medium_v2": (6, 768, 12, 3072, 16, False),
    "ernie_3.0_tiny_mini_v2": (6, 384, 12, 1536, 16, False),
    "ernie_3.0_tiny_micro_v2": (4, 384, 12, 1536, 16, False),
    "ernie_3.0_tiny_nano_v2": (4, 312, 12, 1248, 16, False),
    "ernie_3.0_tiny_pico_v2": (3, 128, 2, 512, 16, False),
}


def known_config(weights_file_name: str) -> Optional[Dict[str, Any]]:
    """The published config of a PaddleNLP ERNIE 3.0 weights file, or None if unknown."""
    stem = weights_file_name[:-len(".pdparams")] if weights_file_name.endswith(".pdparams") else weights_file_name
    if stem not in _ERNIE3:
        return None
    layers, hidden, heads, ffn, task_types, use_task_id = _ERNIE3[stem]
    return {"model_type": "ernie", "vocab_size": 40000, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": ffn, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 2048,
            "type_vocab_size": 4, "task_type_vocab_size": task_types, "use_task_id": use_task_id,
            "initializer_range": 0.02, "pad_token_id": 0}
