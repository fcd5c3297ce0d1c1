"""ERNIE, BERT, RoBERTa and NEZHA: the one :class:`Encoder`, with family defaults and PALM-style APIs;
Canine (its own module) joins the same registry."""
import json
from typing import Any, Dict, Optional, Union

from paddlepalm.backbone.weights import (LoadReport, load_state_into, read_checkpoint, save_native,
                                         tokenizer_files)
from paddlepalm.backbone.canine import Canine
from paddlepalm.backbone.config import EncoderConfig, load_config
from paddlepalm.backbone.encoder import Encoder

ConfigLike = Union[str, Dict[str, Any], EncoderConfig]

# PALM 2.x positional constructor signatures, kept so old scripts run unchanged.
_PALM_ARGS = {
    "ernie": ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
              "max_position_embeddings", "type_vocab_size", "task_type_vocab_size", "hidden_act",
              "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range"),
    "bert": ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
             "max_position_embeddings", "type_vocab_size", "hidden_act", "hidden_dropout_prob",
             "attention_probs_dropout_prob", "initializer_range"),
}
_PALM_ARGS["roberta"] = _PALM_ARGS["nezha"] = _PALM_ARGS["bert"]


class _Family(Encoder):
    """Shared constructor logic of the three public backbone classes."""

    model_type = "bert"

    def __init__(self, *args, phase: str = "train", is_pairwise: bool = False,
                 use_task_emb: Optional[bool] = None, **kwargs):
        if args and isinstance(args[0], (EncoderConfig, dict, str)) and len(args) == 1 and not kwargs:
            config = EncoderConfig.load(args[0], model_type=self.model_type)
        else:
            names = _PALM_ARGS[self.model_type]
            if len(args) > len(names):
                raise TypeError("%s takes at most %d positional arguments"
                                % (type(self).__name__, len(names)))
            values = dict(zip(names, args))
            values.update(kwargs)
            if "sent_type_vocab_size" in values:
                values["type_vocab_size"] = values.pop("sent_type_vocab_size")
            if use_task_emb is not None and self.model_type == "ernie":
                values["use_task_type"] = bool(use_task_emb)
            config = EncoderConfig.from_dict(values, model_type=self.model_type, strict=True)
        super().__init__(config)
        self.is_pairwise = is_pairwise
        self.phase = phase
        self.load_report: Optional[LoadReport] = None
        if phase != "train":
            self.eval()

    @classmethod
    def from_config(cls, config: ConfigLike, phase: str = "train", **overrides):
        """Randomly initialised encoder from a config dict, JSON file path or directory."""
        cfg = EncoderConfig.load(config, model_type=None if isinstance(config, EncoderConfig)
                                 else _default_type(config, cls.model_type), strict=True)
        if overrides:
            cfg = EncoderConfig.from_dict({**cfg.to_dict(), **overrides}, strict=True)
        return cls(cfg, phase=phase)

    @classmethod
    def from_pretrained(cls, path: str, phase: str = "train", strict: bool = True, **overrides):
        """Load a checkpoint dir in paddlepalm, PaddleNLP, Hugging Face or PALM 1.x layout.

        ``overrides`` replace config values (e.g. ``hidden_dropout_prob=0.0``). Missing keys raise
        (pooler excepted) unless ``strict=False``; unused keys are logged by name and kept in
        ``model.load_report``.
        """
        config, state, report = read_checkpoint(path)
        if overrides:
            config = EncoderConfig.from_dict({**config.to_dict(), **overrides}, strict=True)
        import paddle

        with paddle.LazyGuard():  # skip the random init of weights the checkpoint overwrites (0.35 s)
            model = cls(config, phase=phase)
        model.load_report = load_state_into(model, state, report, strict=strict)
        for param in model.parameters():  # keys the checkpoint lacks (e.g. the pooler) get their init now
            if not param._is_initialized():
                param.initialize()
        return model

    def load_pretrained_weights(self, path: str, strict: bool = True) -> LoadReport:
        """Load weights from a checkpoint dir into this (already built) encoder."""
        _, state, report = read_checkpoint(path)
        self.load_report = load_state_into(self, state, report, strict=strict)
        return self.load_report

    def save_pretrained(self, path: str, tokenizer=None) -> str:
        """Write this encoder (and the tokenizer's files, if given) in paddlepalm's layout."""
        files = tuple(tokenizer.files) if tokenizer is not None else ()
        return save_native(self, path, extra_files=files)

    @property
    def inputs_attr(self) -> Dict[str, list]:
        """PALM-style description of the inputs the encoder reads: name -> [shape, dtype]."""
        attrs = {"input_ids": [[-1, -1], "int64"], "attention_mask": [[-1, -1], "int64"]}
        if self.config.type_vocab_size > 0:
            attrs["token_type_ids"] = [[-1, -1], "int64"]
        if self.config.use_task_type:
            attrs["task_type_ids"] = [[-1, -1], "int64"]
        return attrs

    @property
    def outputs_attr(self) -> Dict[str, list]:
        h = self.config.hidden_size
        return {"sequence_output": [[-1, -1, h], "float32"],
                "pooled_output": [[-1, h], "float32"],
                "word_embedding_table": [[self.config.vocab_size, h], "float32"]}

    def __repr__(self):
        c = self.config
        return "%s(model_type=%r, layers=%d, hidden=%d, heads=%d, vocab=%d)" % (
            type(self).__name__, c.model_type, c.num_hidden_layers, c.hidden_size,
            c.num_attention_heads, c.vocab_size)


def _default_type(config: ConfigLike, fallback: str) -> Optional[str]:
    """Use the config's own model_type if it declares one, else the class's."""
    if isinstance(config, dict):
        return None if "model_type" in config else fallback
    try:
        with open(config, encoding="utf-8") as f:
            return None if "model_type" in json.load(f) else fallback
    except (OSError, ValueError):
        return fallback


class ERNIE(_Family):
    """ERNIE 1.0/2.0/3.0: BERT layout with an optional task-type embedding (``use_task_type``)."""

    model_type = "ernie"


class BERT(_Family):
    """BERT: token-type (segment) embeddings, absolute positions from 0."""

    model_type = "bert"


class RoBERTa(_Family):
    """RoBERTa: positions offset by ``pad_token_id + 1``, byte-level BPE vocabulary."""

    model_type = "roberta"


class NEZHA(_Family):
    """NEZHA (Wei et al. 2019): BERT with functional relative position encodings (sinusoids of the
    distance ``j - i`` clipped at ``max_relative_position``, added to keys and values in every
    attention layer) instead of learned absolute positions."""

    model_type = "nezha"


FAMILIES = {"ernie": ERNIE, "bert": BERT, "roberta": RoBERTa, "nezha": NEZHA, "canine": Canine}


def build_encoder(config: ConfigLike, phase: str = "train"):
    """Build the class named by the config's ``model_type`` (a BERT family or Canine)."""
    cfg = load_config(config)
    return FAMILIES[cfg.model_type](cfg, phase=phase)


def convert_checkpoint(src_dir: str, dst_dir: str) -> str:
    """Convert a checkpoint in any supported layout into paddlepalm's layout at ``dst_dir``."""
    config, state, report = read_checkpoint(src_dir)
    model = build_encoder(config)
    load_state_into(model, state, report)
    return save_native(model, dst_dir, extra_files=tokenizer_files(src_dir))
