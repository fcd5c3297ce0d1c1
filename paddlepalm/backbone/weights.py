"""Reading and writing encoder checkpoints in the layouts users have.

=============  ==============================================================================
layout         files
=============  ==============================================================================
paddlepalm     ``paddlepalm_config.json`` + ``encoder.safetensors`` (our own format)
paddlenlp      ``model_state.pdparams`` + ``model_config.json`` or ``config.json``
hf             ``model.safetensors`` + ``config.json`` (Hugging Face transformers)
palm1          ``ernie_config.json``/``bert_config.json`` + a ``params/`` folder of per-variable
               files (PALM 1.x/2.x and the ERNIE/BERT archives on Baidu's servers)
=============  ==============================================================================

Each layout has one converter that maps its tensor names onto ours (:data:`NATIVE` names follow
Paddle's transformer naming) and returns numpy arrays. Loading reports unused and missing keys by
name; a wrong shape is an error naming the file and the key.
"""
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from paddlepalm.backbone.config import EncoderConfig
from paddlepalm.errors import CheckpointError
from paddlepalm.utils.atomic_dir import atomic_directory

logger = logging.getLogger("paddlepalm")

NATIVE_CONFIG = "paddlepalm_config.json"
NATIVE_WEIGHTS = "encoder.safetensors"
FORMAT_VERSION = 1
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "vocab.json", "merges.txt",
                   "tokenizer_config.json", "special_tokens_map.json")
LAYOUTS = ("paddlepalm", "paddlenlp", "hf", "palm1")
_MODEL_PREFIXES = ("bert.", "roberta.", "ernie.", "nezha.", "canine.", "model.", "encoder_model.")


@dataclass
class LoadReport:
    """What a load did: which file, which keys were unused or left at their initial values."""

    source: str
    layout: str
    unused_keys: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)


def detect_layout(path: str) -> str:
    """Return ``'paddlepalm'``, ``'paddlenlp'``, ``'hf'`` or ``'palm1'`` for a checkpoint dir."""
    if not os.path.isdir(path):
        raise CheckpointError("%s: not a directory" % path)
    files = set(os.listdir(path))
    if NATIVE_CONFIG in files:
        return "paddlepalm"
    if any(f.endswith(".pdparams") for f in files):
        return "paddlenlp"
    if "model.safetensors" in files or "pytorch_model.bin" in files:
        return "hf"
    if files & {"ernie_config.json", "bert_config.json"} or "params" in files:
        return "palm1"
    raise CheckpointError(
        "%s: unknown checkpoint layout (found %s); expected one of: %s + %s (paddlepalm), "
        "model_state.pdparams (paddlenlp), model.safetensors + config.json (hf), "
        "ernie_config.json/bert_config.json + params/ (palm1)"
        % (path, ", ".join(sorted(files)) or "no files", NATIVE_CONFIG, NATIVE_WEIGHTS))


def _require(path: str, *names: str) -> str:
    for name in names:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise CheckpointError("%s: missing file %s" % (path, " or ".join(names)))


# ----------------------------------------------------------------------------- name converters
# One table for every Hugging Face encoder we read: BERT/ERNIE/RoBERTa/NEZHA use ``encoder.layer.N``;
# Canine adds its character stacks (``initial_char_encoder``, ``final_char_encoder``), hash
# embeddings and the down/up-sampling convolutions (Conv1d weights are [out, in, k] in both).
_STACK = r"(encoder|initial_char_encoder|final_char_encoder)"
_HF_RULES: List[Tuple[str, str]] = [
    (r"^(?:embeddings|char_embeddings)\.LayerNorm\.(weight|gamma)$", "embeddings.layer_norm.weight"),
    (r"^(?:embeddings|char_embeddings)\.LayerNorm\.(bias|beta)$", "embeddings.layer_norm.bias"),
    (r"^embeddings\.(word|position|token_type|task_type)_embeddings\.weight$",
     r"embeddings.\1_embeddings.weight"),
    (r"^char_embeddings\.HashBucketCodepointEmbedder_(\d+)\.weight$", r"embeddings.hash_embeddings.\1.weight"),
    (r"^char_embeddings\.char_position_embeddings\.weight$", "embeddings.position_embeddings.weight"),
    (r"^char_embeddings\.token_type_embeddings\.weight$", "embeddings.token_type_embeddings.weight"),
    (r"^(chars_to_molecules|projection)\.conv\.(weight|bias)$", r"\1.conv.\2"),
    (r"^(chars_to_molecules|projection)\.LayerNorm\.(weight|bias)$", r"\1.layer_norm.\2"),
    (_STACK + r"\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)$", r"\1.layers.\2.self_attn.q_proj.\3"),
    (_STACK + r"\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)$", r"\1.layers.\2.self_attn.k_proj.\3"),
    (_STACK + r"\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)$", r"\1.layers.\2.self_attn.v_proj.\3"),
    (_STACK + r"\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$",
     r"\1.layers.\2.self_attn.out_proj.\3"),
    (_STACK + r"\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|gamma)$", r"\1.layers.\2.norm1.weight"),
    (_STACK + r"\.layer\.(\d+)\.attention\.output\.LayerNorm\.(bias|beta)$", r"\1.layers.\2.norm1.bias"),
    (_STACK + r"\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$", r"\1.layers.\2.linear1.\3"),
    (_STACK + r"\.layer\.(\d+)\.output\.dense\.(weight|bias)$", r"\1.layers.\2.linear2.\3"),
    (_STACK + r"\.layer\.(\d+)\.output\.LayerNorm\.(weight|gamma)$", r"\1.layers.\2.norm2.weight"),
    (_STACK + r"\.layer\.(\d+)\.output\.LayerNorm\.(bias|beta)$", r"\1.layers.\2.norm2.bias"),
    (r"^pooler\.dense\.(weight|bias)$", r"pooler.dense.\1"),
]
_HF_BUFFERS = re.compile(r"^(char_)?embeddings\.(position_ids|token_type_ids)$")

_PALM1_RULES: List[Tuple[str, str]] = [
    (r"^word_embedding$", "embeddings.word_embeddings.weight"),
    (r"^pos_embedding$", "embeddings.position_embeddings.weight"),
    (r"^sent_embedding$", "embeddings.token_type_embeddings.weight"),
    (r"^task_embedding$", "embeddings.task_type_embeddings.weight"),
    (r"^pre_encoder_layer_norm_scale$", "embeddings.layer_norm.weight"),
    (r"^pre_encoder_layer_norm_bias$", "embeddings.layer_norm.bias"),
    (r"^encoder_layer_(\d+)_multi_head_att_query_fc\.w_0$", r"encoder.layers.\1.self_attn.q_proj.weight"),
    (r"^encoder_layer_(\d+)_multi_head_att_query_fc\.b_0$", r"encoder.layers.\1.self_attn.q_proj.bias"),
    (r"^encoder_layer_(\d+)_multi_head_att_key_fc\.w_0$", r"encoder.layers.\1.self_attn.k_proj.weight"),
    (r"^encoder_layer_(\d+)_multi_head_att_key_fc\.b_0$", r"encoder.layers.\1.self_attn.k_proj.bias"),
    (r"^encoder_layer_(\d+)_multi_head_att_value_fc\.w_0$", r"encoder.layers.\1.self_attn.v_proj.weight"),
    (r"^encoder_layer_(\d+)_multi_head_att_value_fc\.b_0$", r"encoder.layers.\1.self_attn.v_proj.bias"),
    (r"^encoder_layer_(\d+)_multi_head_att_output_fc\.w_0$", r"encoder.layers.\1.self_attn.out_proj.weight"),
    (r"^encoder_layer_(\d+)_multi_head_att_output_fc\.b_0$", r"encoder.layers.\1.self_attn.out_proj.bias"),
    (r"^encoder_layer_(\d+)_post_att_layer_norm_scale$", r"encoder.layers.\1.norm1.weight"),
    (r"^encoder_layer_(\d+)_post_att_layer_norm_bias$", r"encoder.layers.\1.norm1.bias"),
    (r"^encoder_layer_(\d+)_ffn_fc_0\.w_0$", r"encoder.layers.\1.linear1.weight"),
    (r"^encoder_layer_(\d+)_ffn_fc_0\.b_0$", r"encoder.layers.\1.linear1.bias"),
    (r"^encoder_layer_(\d+)_ffn_fc_1\.w_0$", r"encoder.layers.\1.linear2.weight"),
    (r"^encoder_layer_(\d+)_ffn_fc_1\.b_0$", r"encoder.layers.\1.linear2.bias"),
    (r"^encoder_layer_(\d+)_post_ffn_layer_norm_scale$", r"encoder.layers.\1.norm2.weight"),
    (r"^encoder_layer_(\d+)_post_ffn_layer_norm_bias$", r"encoder.layers.\1.norm2.bias"),
    (r"^pooled_fc\.w_0$", "pooler.dense.weight"),
    (r"^pooled_fc\.b_0$", "pooler.dense.bias"),
]


def _rename(state: Dict[str, np.ndarray], rules, transpose_linear: bool = False,
            ignore: Optional[re.Pattern] = None) -> Tuple[Dict[str, np.ndarray], List[str]]:
    compiled = [(re.compile(p), r) for p, r in rules]
    out: Dict[str, np.ndarray] = {}
    unused: List[str] = []
    for key, value in state.items():
        name = _strip_prefix(key)
        if ignore is not None and ignore.match(name):
            continue
        for pattern, repl in compiled:
            if pattern.match(name):
                new = pattern.sub(repl, name)
                if transpose_linear and value.ndim == 2 and not new.startswith("embeddings."):
                    value = np.ascontiguousarray(value.T)  # torch Linear [out, in] -> Paddle [in, out]
                out[new] = value
                break
        else:
            unused.append(key)
    return out, unused


def _strip_prefix(key: str) -> str:
    for prefix in _MODEL_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


# ----------------------------------------------------------------------------- layout readers
def _read_native(path: str):
    from safetensors.numpy import load_file

    config = EncoderConfig.load(_require(path, NATIVE_CONFIG))
    weights = _require(path, NATIVE_WEIGHTS)
    return config, load_file(weights), [], weights


def _read_paddlenlp(path: str):
    import paddle

    weights = [f for f in sorted(os.listdir(path)) if f.endswith(".pdparams")]
    weights_file = os.path.join(path, "model_state.pdparams" if "model_state.pdparams" in weights
                                else weights[0])
    if any(os.path.isfile(os.path.join(path, n)) for n in ("model_config.json", "config.json")):
        config = EncoderConfig.load(_require(path, "model_config.json", "config.json"))
    else:  # PaddleNLP's ERNIE 3.0 downloads: a bare .pdparams whose config lives in PaddleNLP's code
        from paddlepalm.backbone.paddlenlp_configs import known_config

        published = known_config(os.path.basename(weights_file))
        if published is None:
            raise CheckpointError("%s: missing file model_config.json or config.json (and %s is not one of "
                                  "PaddleNLP's published ERNIE 3.0 files)" % (path, os.path.basename(weights_file)))
        logger.info("%s: no config file; using PaddleNLP's published config of %s",
                    path, os.path.basename(weights_file))
        config = EncoderConfig.from_dict(published, source=weights_file, strict=True)
    raw = paddle.load(weights_file, return_numpy=True)
    state = {k: _to_numpy(v) for k, v in raw.items()}
    out, unused = {}, []
    native = _native_name_pattern()
    for key, value in state.items():
        name = _strip_prefix(key)
        if native.match(name):
            out[name] = value
        else:
            unused.append(key)
    return config, out, unused, weights_file


def _read_hf(path: str):
    config_file = _require(path, "config.json")
    config = EncoderConfig.load(config_file)
    weights_file = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights_file):
        raise CheckpointError(
            "%s: only pytorch_model.bin found; reading it needs torch. Save the model with "
            "safe_serialization=True (model.safetensors) or convert it where torch is installed"
            % path)
    from safetensors.numpy import load_file

    state, unused = _rename(load_file(weights_file), _HF_RULES, transpose_linear=True,
                            ignore=_HF_BUFFERS)
    return config, state, unused, weights_file


def _read_palm1(path: str):
    from paddlepalm.backbone.palm1 import read_param_dir

    config_file = _require(path, "ernie_config.json", "bert_config.json", "config.json")
    model_type = "bert" if os.path.basename(config_file) == "bert_config.json" else None
    config = EncoderConfig.load(config_file, model_type=model_type)
    params = os.path.join(path, "params") if os.path.isdir(os.path.join(path, "params")) else path
    state, unused = _rename(read_param_dir(params), _PALM1_RULES)
    return config, state, unused, params


_READERS: Dict[str, Callable] = {
    "paddlepalm": _read_native, "paddlenlp": _read_paddlenlp, "hf": _read_hf, "palm1": _read_palm1,
}


def _native_name_pattern() -> re.Pattern:
    return re.compile(r"^(embeddings\.|encoder\.layers\.\d+\.|pooler\.dense\.)")


def read_checkpoint(path: str) -> Tuple[EncoderConfig, Dict[str, np.ndarray], LoadReport]:
    """Read any supported layout into (config, native-named numpy state, report)."""
    layout = detect_layout(path)
    try:
        config, state, unused, source = _READERS[layout](path)
    except CheckpointError:
        raise
    except Exception as e:  # a truncated safetensors / JSON / pickle file: say which checkpoint
        raise CheckpointError("%s: cannot read the %s checkpoint, a file is damaged or truncated (%s: %s)"
                              % (path, layout, type(e).__name__, e)) from e
    return config, state, LoadReport(source=source, layout=layout, unused_keys=sorted(unused))


# ----------------------------------------------------------------------------- load / save
OPTIONAL_KEYS = re.compile(r"^pooler\.")  # checkpoints without a pooler still load (with a warning)


def load_state_into(model, state: Dict[str, np.ndarray], report: LoadReport,
                    strict: bool = True) -> LoadReport:
    """Copy ``state`` into ``model``; wrong shapes raise, missing/unused keys are reported."""
    import paddle

    checker = getattr(model, "check_checkpoint", None)
    if checker is not None:  # model-specific settings that shapes alone explain badly (Canine)
        checker(state, report.source)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unused = [k for k in state if k not in own]
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                "%s: key %r has shape %s, the model expects %s (is the config right?)"
                % (report.source, key, list(value.shape), list(own[key].shape)))
    hard_missing = [k for k in missing if not OPTIONAL_KEYS.match(k)]
    if hard_missing and strict:
        raise CheckpointError("%s: missing key(s) %s" % (report.source, ", ".join(hard_missing)))
    report.missing_keys = sorted(missing)
    report.unused_keys = sorted(set(report.unused_keys) | set(unused))
    if report.missing_keys:
        logger.warning("%s: keys not in checkpoint, left at their initial values: %s",
                       report.source, ", ".join(report.missing_keys))
    if report.unused_keys:
        logger.warning("%s: checkpoint keys not used by the encoder: %s",
                       report.source, ", ".join(report.unused_keys))
    model.set_state_dict({k: paddle.to_tensor(v.astype(str(own[k].dtype).split(".")[-1]))
                          for k, v in state.items() if k in own})
    return report


def save_native(model, path: str, extra_files: Tuple[str, ...] = ()) -> str:
    """Write ``model`` in paddlepalm's layout (atomically: temp dir, then rename)."""
    from safetensors.numpy import save_file

    def write(tmp: str) -> None:
        state = {k: np.ascontiguousarray(v.numpy()) for k, v in model.state_dict().items()}
        save_file(state, os.path.join(tmp, NATIVE_WEIGHTS), metadata={"format": "paddlepalm"})
        data = model.config.to_dict()
        data["paddlepalm_format_version"] = FORMAT_VERSION
        with open(os.path.join(tmp, NATIVE_CONFIG), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        for src in extra_files:
            shutil.copy2(src, os.path.join(tmp, os.path.basename(src)))

    return atomic_directory(path, write)


def tokenizer_files(path: str) -> Tuple[str, ...]:
    """The tokenizer/vocab files present in a checkpoint dir (copied along on conversion)."""
    return tuple(os.path.join(path, f) for f in TOKENIZER_FILES if os.path.isfile(os.path.join(path, f)))
