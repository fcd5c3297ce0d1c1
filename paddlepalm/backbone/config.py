"""Configurations of the encoders: the BERT family (BERT, ERNIE 1/2/3, RoBERTa, NEZHA) and Canine.

BERT-family models differ only in a few switches: whether token-type (sentence) embeddings exist,
an optional task-type embedding (ERNIE 2.0/3.0), the position-id offset (RoBERTa counts positions
from ``pad_token_id + 1``) and the kind of position encoding (NEZHA: functional relative positions,
clipped at ``max_relative_position``, instead of learned absolute ones). Canine
(:class:`CanineConfig`) has no vocabulary and its own switches; :func:`load_config` picks the class
from ``model_type``. :func:`EncoderConfig.from_dict` reads the JSON dialects users have:
paddlepalm's own, Hugging Face ``config.json``, PaddleNLP ``model_config.json`` and PALM/ERNIE's
``ernie_config.json`` / ``bert_config.json``.
"""
import dataclasses
import json
import logging
import os
from typing import Any, Dict, Optional, Union

from paddlepalm.errors import CheckpointError

logger = logging.getLogger("paddlepalm")

MODEL_TYPES = ("bert", "ernie", "roberta", "nezha")
POSITION_ENCODINGS = ("absolute", "functional_relative")  # learned table / NEZHA's sinusoids
ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "relu", "tanh", "silu")

# Alternative key spellings found in the wild -> our field name.
_ALIASES = {
    "sent_type_vocab_size": "type_vocab_size",
    "layer_norm_epsilon": "layer_norm_eps",
    "n_layer": "num_hidden_layers",
    "use_task_id": "use_task_type",
    "intermediate_act": "hidden_act",
}
# Keys that carry no meaning for the encoder; accepted and dropped without warning.
_IGNORED_KEYS = {
    "architectures", "transformers_version", "_name_or_path", "gradient_checkpointing",
    "use_cache", "torch_dtype", "dtype", "init_class", "classifier_dropout",
    "bos_token_id", "eos_token_id", "paddlenlp_version", "fuse", "enable_recompute",
    "paddlepalm_format_version", "problem_type", "is_decoder", "add_cross_attention",
    "tokenizer_class", "pool_act", "model_name_or_path", "num_choices", "label2id", "id2label",
    "chunk_size_feed_forward", "output_attentions", "output_hidden_states", "return_dict",
    "use_return_dict", "finetuning_task", "num_labels", "dropout", "task_id", "is_pairwise",
}


class _ConfigFile:
    """JSON (de)serialisation shared by the config classes."""

    source_file: Optional[str] = None  # the file this config was read from (for error messages)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def load(cls, source: Union[str, Dict[str, Any], "AnyConfig"],
             model_type: Optional[str] = None, strict: bool = False) -> "AnyConfig":
        """Accept a config object, a dict, a JSON file path or a directory holding one."""
        if isinstance(source, _ConfigFile):
            return source
        if isinstance(source, dict):
            return cls.from_dict(source, model_type=model_type, strict=strict)
        path = str(source)
        if os.path.isdir(path):
            for name in CONFIG_FILE_NAMES:
                if os.path.isfile(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                raise CheckpointError("%s: no config file found (looked for %s)"
                                      % (source, ", ".join(CONFIG_FILE_NAMES)))
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            raise CheckpointError("%s: config file not found" % path) from None
        except json.JSONDecodeError as e:
            raise CheckpointError("%s: line %d: invalid JSON: %s" % (path, e.lineno, e.msg)) from None
        config = cls.from_dict(raw, model_type=model_type, source=path, strict=strict)
        config.source_file = path
        return config


@dataclasses.dataclass
class EncoderConfig(_ConfigFile):
    """Hyper-parameters of a BERT-family encoder."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: Optional[int] = None  # default 4 * hidden_size
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # 0 disables token-type embeddings
    task_type_vocab_size: int = 0  # >0 adds ERNIE's task-type embedding
    use_task_type: Optional[bool] = None  # None: on for ERNIE when task_type_vocab_size > 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_offset: int = 0  # RoBERTa: pad_token_id + 1 (positions start there and skip padding)
    position_embedding_type: Optional[str] = None  # 'absolute'; NEZHA: 'functional_relative'
    max_relative_position: int = 64  # NEZHA's clipping distance (functional_relative only)
    model_type: str = "bert"

    def __post_init__(self):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        if self.model_type not in MODEL_TYPES:
            raise CheckpointError("key 'model_type': unknown model type %r; expected one of %s"
                                  % (self.model_type, ", ".join(MODEL_TYPES)))
        if self.position_embedding_type is None:
            self.position_embedding_type = "functional_relative" if self.model_type == "nezha" else "absolute"
        if self.position_embedding_type not in POSITION_ENCODINGS:
            raise CheckpointError("key 'position_embedding_type': %r is not supported; expected one of %s"
                                  % (self.position_embedding_type, ", ".join(POSITION_ENCODINGS)))
        if self.relative_positions and self.max_relative_position < 1:
            raise CheckpointError("key 'max_relative_position': must be >= 1, got %r"
                                  % (self.max_relative_position,))
        if self.task_type_vocab_size < 0 or self.type_vocab_size < 0:
            raise CheckpointError("keys 'type_vocab_size' / 'task_type_vocab_size' must be >= 0")
        if self.hidden_act not in ACTIVATIONS:
            raise CheckpointError("unknown hidden_act %r; expected one of %s"
                                  % (self.hidden_act, ", ".join(ACTIVATIONS)))
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError("hidden_size %d is not divisible by num_attention_heads %d"
                                  % (self.hidden_size, self.num_attention_heads))
        if self.position_offset and self.position_offset != self.pad_token_id + 1:
            raise CheckpointError("key 'position_offset': RoBERTa-style positions start at "
                                  "pad_token_id + 1 = %d, got %d"
                                  % (self.pad_token_id + 1, self.position_offset))
        if self.use_task_type is None:  # an explicit False (PaddleNLP's use_task_id: false) is kept
            self.use_task_type = bool(self.task_type_vocab_size) and self.model_type == "ernie"
        self.use_task_type = bool(self.use_task_type)
        if self.use_task_type and not self.task_type_vocab_size:
            self.task_type_vocab_size = 3

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def relative_positions(self) -> bool:
        """True for NEZHA's functional relative position encoding (no learned position table)."""
        return self.position_embedding_type == "functional_relative"

    @classmethod
    def from_dict(cls, raw: Dict[str, Any], model_type: Optional[str] = None,
                  source: str = "<dict>", strict: bool = False) -> "AnyConfig":
        """Build from any supported JSON dialect (a Canine config gives a :class:`CanineConfig`).

        Unknown keys are logged by name (``strict=True``: raised), naming ``source``.
        """
        raw = dict(raw)
        if "init_args" in raw and isinstance(raw["init_args"], list):  # old PaddleNLP layout
            args = [a for a in raw["init_args"] if isinstance(a, dict)]
            init_class = raw.get("init_class")
            raw = dict(args[0]) if args else {}
            if init_class:
                raw.setdefault("init_class", init_class)
        detected = model_type or raw.pop("model_type", None) or _guess_model_type(raw)
        raw.pop("model_type", None)
        if detected == "canine":
            return CanineConfig.from_dict(raw, source=source, strict=strict)
        values = _known_values(cls, raw, source, strict)
        values["model_type"] = detected
        if detected == "roberta":
            values.setdefault("pad_token_id", 1)
            values.setdefault("position_offset", values["pad_token_id"] + 1)
        if detected == "ernie" and values.get("use_task_type") and "task_type_vocab_size" not in values:
            values["task_type_vocab_size"] = 3
        return _construct(cls, values, source)


def _known_values(cls, raw: Dict[str, Any], source: str, strict: bool) -> Dict[str, Any]:
    """The keys of ``raw`` that are fields of ``cls`` (aliases resolved); unknown ones reported."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values: Dict[str, Any] = {}
    unknown = []
    for key, value in raw.items():
        key = _ALIASES.get(key, key)
        if key in fields:
            values[key] = value
        elif key not in _IGNORED_KEYS and not key.endswith("_token_id"):
            unknown.append(key)
    if unknown:
        if strict:
            raise CheckpointError("%s: unknown encoder config key(s): %s"
                                  % (source, ", ".join(sorted(unknown))))
        logger.warning("%s: ignoring unknown encoder config key(s): %s",
                       source, ", ".join(sorted(unknown)))
    return values


def _construct(cls, values: Dict[str, Any], source: str):
    try:
        return cls(**values)
    except (TypeError, CheckpointError) as e:
        raise CheckpointError("%s: %s" % (source, e)) from None


# Canine (Clark et al. 2021) hashes code points with these multipliers, one per hash function
# (the published checkpoints use the first 8); the table is part of the model's definition.
CANINE_PRIMES = (31, 43, 59, 61, 73, 97, 103, 113, 137, 149, 157, 173, 181, 193, 211, 223)


@dataclasses.dataclass
class CanineConfig(_ConfigFile):
    """Hyper-parameters of Canine: hash embeddings of code points, a local-attention character
    layer, strided downsampling to molecules, the deep stack, upsampling back to characters."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 16384
    type_vocab_size: int = 16
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    downsampling_rate: int = 4
    upsampling_kernel_size: int = 4
    num_hash_functions: int = 8
    num_hash_buckets: int = 16384
    local_transformer_stride: int = 128
    pad_token_id: int = 0
    model_type: str = "canine"

    use_task_type = False  # the encoder-input contract shared with the BERT family
    task_type_vocab_size = 0
    relative_positions = False

    def __post_init__(self):
        if self.model_type != "canine":
            raise CheckpointError("key 'model_type': expected 'canine', got %r" % (self.model_type,))
        for key in ("downsampling_rate", "upsampling_kernel_size", "num_hash_functions",
                    "num_hash_buckets", "local_transformer_stride", "type_vocab_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CheckpointError("key %r: must be a positive integer, got %r" % (key, value))
        if self.num_hash_functions > len(CANINE_PRIMES):
            raise CheckpointError("key 'num_hash_functions': at most %d hash functions are defined, got %d"
                                  % (len(CANINE_PRIMES), self.num_hash_functions))
        if self.hidden_size % self.num_hash_functions:
            raise CheckpointError("key 'num_hash_functions': hidden_size %d is not divisible by %d hash "
                                  "functions" % (self.hidden_size, self.num_hash_functions))
        if self.hidden_act not in ACTIVATIONS:
            raise CheckpointError("key 'hidden_act': unknown activation %r; expected one of %s"
                                  % (self.hidden_act, ", ".join(ACTIVATIONS)))
        if self.hidden_size % self.num_attention_heads:
            raise CheckpointError("hidden_size %d is not divisible by num_attention_heads %d"
                                  % (self.hidden_size, self.num_attention_heads))

    def layer_config(self) -> EncoderConfig:
        """The transformer-layer settings, for building Canine's stacks from the shared layers."""
        return EncoderConfig(
            vocab_size=1, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act, hidden_dropout_prob=self.hidden_dropout_prob,
            attention_probs_dropout_prob=self.attention_probs_dropout_prob,
            initializer_range=self.initializer_range, layer_norm_eps=self.layer_norm_eps)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any], model_type: Optional[str] = None,
                  source: str = "<dict>", strict: bool = False) -> "CanineConfig":
        raw = {k: v for k, v in raw.items() if k != "model_type"}
        values = _known_values(cls, raw, source, strict)
        return _construct(cls, values, source)


AnyConfig = Union[EncoderConfig, CanineConfig]


def load_config(source, model_type: Optional[str] = None, strict: bool = False) -> AnyConfig:
    """Read any encoder config (file, dir, dict or object); the class follows ``model_type``."""
    return EncoderConfig.load(source, model_type=model_type, strict=strict)


CONFIG_FILE_NAMES = ("paddlepalm_config.json", "config.json", "model_config.json",
                     "ernie_config.json", "bert_config.json")


def _guess_model_type(raw: Dict[str, Any]) -> str:
    archs = " ".join(raw.get("architectures") or []) + " " + str(raw.get("init_class", ""))
    archs = archs.lower()
    for name in ("roberta", "ernie", "nezha", "canine", "bert"):
        if name in archs:
            return name
    if raw.get("task_type_vocab_size") or "sent_type_vocab_size" in raw or raw.get("use_task_id"):
        return "ernie"
    return "bert"
