"""One configuration for the whole BERT family (BERT, ERNIE 1/2/3, RoBERTa).

Model families differ only in a few switches: whether token-type (sentence) embeddings exist, an
optional task-type embedding (ERNIE 2.0/3.0), and the position-id offset (RoBERTa counts positions
from ``pad_token_id + 1``). :func:`EncoderConfig.from_dict` reads the JSON dialects users have:
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

MODEL_TYPES = ("bert", "ernie", "roberta")
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
    "use_cache", "torch_dtype", "dtype", "init_class", "classifier_dropout", "position_embedding_type",
    "bos_token_id", "eos_token_id", "paddlenlp_version", "fuse", "enable_recompute",
    "paddlepalm_format_version", "problem_type", "is_decoder", "add_cross_attention",
    "tokenizer_class", "pool_act", "model_name_or_path", "num_choices", "label2id", "id2label",
    "chunk_size_feed_forward", "output_attentions", "output_hidden_states", "return_dict",
    "use_return_dict", "finetuning_task", "num_labels", "dropout", "task_id", "is_pairwise",
}


@dataclasses.dataclass
class EncoderConfig:
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
    use_task_type: bool = False
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_offset: int = 0  # RoBERTa: pad_token_id + 1 (positions start there and skip padding)
    model_type: str = "bert"

    def __post_init__(self):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        if self.model_type not in MODEL_TYPES:
            raise CheckpointError("key 'model_type': unknown model type %r; expected one of %s"
                                  % (self.model_type, ", ".join(MODEL_TYPES)))
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
        if self.task_type_vocab_size and not self.use_task_type:
            self.use_task_type = True if self.model_type == "ernie" else self.use_task_type
        if self.use_task_type and not self.task_type_vocab_size:
            self.task_type_vocab_size = 3

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any], model_type: Optional[str] = None,
                  source: str = "<dict>", strict: bool = False) -> "EncoderConfig":
        """Build from any supported JSON dialect.

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
        values["model_type"] = detected
        if detected == "roberta":
            values.setdefault("pad_token_id", 1)
            values.setdefault("position_offset", values["pad_token_id"] + 1)
        if detected == "ernie" and values.get("use_task_type") and "task_type_vocab_size" not in values:
            values["task_type_vocab_size"] = 3
        try:
            return cls(**values)
        except (TypeError, CheckpointError) as e:
            raise CheckpointError("%s: %s" % (source, e)) from None

    @classmethod
    def load(cls, source: Union[str, Dict[str, Any], "EncoderConfig"],
             model_type: Optional[str] = None, strict: bool = False) -> "EncoderConfig":
        """Accept an EncoderConfig, a dict, a JSON file path or a directory holding one."""
        if isinstance(source, EncoderConfig):
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
        return cls.from_dict(raw, model_type=model_type, source=path, strict=strict)


CONFIG_FILE_NAMES = ("paddlepalm_config.json", "config.json", "model_config.json",
                     "ernie_config.json", "bert_config.json")


def _guess_model_type(raw: Dict[str, Any]) -> str:
    archs = " ".join(raw.get("architectures") or []) + " " + str(raw.get("init_class", ""))
    archs = archs.lower()
    for name in ("roberta", "ernie", "bert"):
        if name in archs:
            return name
    if raw.get("task_type_vocab_size") or "sent_type_vocab_size" in raw or raw.get("use_task_id"):
        return "ernie"
    return "bert"
