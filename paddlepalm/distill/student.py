"""Building the student: an encoder from a config, or from a subset of the teacher's layers, plus
the task heads (the teacher's copied, or fresh ones).

``student_from_teacher(teacher_encoder, layers=[0, 2, 4])`` is DistilBERT's initialisation: the
student keeps the teacher's config except ``num_hidden_layers``; its embeddings, pooler and layer
``j`` get the teacher's embeddings, pooler and layer ``layers[j]``, parameter by parameter by name.
"""
import logging
import re
import warnings
from typing import Any, Dict, Sequence, Union

import paddle

from paddlepalm.backbone import EncoderConfig, FAMILIES
from paddlepalm.errors import CheckpointError, ConfigError

logger = logging.getLogger("paddlepalm")

_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.*)$")
HEAD_MODES = ("copy", "fresh")
_SHAPE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "vocab_size",
               "max_position_embeddings", "type_vocab_size", "task_type_vocab_size", "use_task_type",
               "hidden_act", "model_type", "pad_token_id", "position_offset")


def _check_layers(layers: Sequence[int], num_layers: int, key: str) -> list:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
        raise ConfigError("%s: expected a non-empty list of teacher layer indices, got %r" % (key, layers))
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ConfigError("%s[%d]: layer index must be an integer, got %r" % (key, i, layer))
        if not 0 <= layer < num_layers:
            raise ConfigError("%s[%d]: layer %d is out of range: the teacher has %d layers (0..%d)"
                              % (key, i, layer, num_layers, num_layers - 1))
        out.append(layer)
    if len(set(out)) != len(out):
        raise ConfigError("%s: layer indices repeat: %s" % (key, out))
    return out


def student_from_teacher(teacher_encoder, layers: Sequence[int], copy_pooler: bool = True,
                         key: str = "distill.student.layers", **overrides):
    """An encoder of ``len(layers)`` layers initialised from the teacher's ``layers`` (0-based).

    ``overrides`` may change training-time settings (dropout, ``initializer_range``...), not
    shapes: a key that changes a parameter's shape raises (build from a config instead).
    """
    tcfg = teacher_encoder.config
    layers = _check_layers(layers, tcfg.num_hidden_layers, key)
    shaped = sorted(k for k in overrides if k in _SHAPE_KEYS and overrides[k] != getattr(tcfg, k))
    if shaped:
        raise ConfigError("distill.student.overrides: %s would change parameter shapes, so the teacher's "
                          "layers cannot be copied; give distill.student.config instead" % ", ".join(shaped))
    values = dict(tcfg.to_dict(), **overrides, num_hidden_layers=len(layers))
    config = EncoderConfig.from_dict(values, source="distill.student", strict=True)
    family = FAMILIES.get(config.model_type)
    with paddle.LazyGuard():  # every parameter is overwritten below (the pooler unless copied)
        student = family(config)
    teacher_state = teacher_encoder.state_dict()
    state = {}
    for name in student.state_dict():
        m = _LAYER.match(name)
        source = "encoder.layers.%d.%s" % (layers[int(m.group(1))], m.group(2)) if m else name
        if name.startswith("pooler.") and not copy_pooler:
            continue
        state[name] = paddle.to_tensor(teacher_state[source].numpy())
    with warnings.catch_warnings():  # "Skip loading for pooler..." when the pooler is not copied
        warnings.simplefilter("ignore")
        student.set_state_dict(state)
    for p in student.parameters():  # the pooler, when not copied
        if not p._is_initialized():
            p.initialize()
    student.train()
    logger.info("student: %d layers initialised from teacher layers %s (embeddings%s copied)",
                len(layers), layers, " and pooler" if copy_pooler else "")
    return student


def student_from_config(config: Union[str, Dict[str, Any], EncoderConfig], key: str = "distill.student.config"):
    """A randomly initialised encoder from a config mapping, JSON file or directory."""
    try:
        cfg = EncoderConfig.load(config, strict=True)
    except CheckpointError as e:
        raise ConfigError("%s: %s" % (key, e)) from None
    return FAMILIES[cfg.model_type](cfg)


def build_student(spec: Dict[str, Any], teacher_encoder, key: str = "distill.student"):
    """The student encoder from a ``distill.student`` mapping: ``{layers: [...]}`` (from the
    teacher; with optional ``copy_pooler``, ``overrides``) or ``{config: ...}`` (random init; a
    mapping names only what differs from the teacher, e.g. ``{num_hidden_layers: 2,
    hidden_size: 256, num_attention_heads: 4}``; a JSON file is taken as it is)."""
    allowed = {"layers", "config", "overrides", "copy_pooler", "heads"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError("%s: unknown key(s) %s; expected %s" % (key, ", ".join(unknown), ", ".join(sorted(allowed))))
    if ("layers" in spec) == ("config" in spec):
        raise ConfigError("%s: give exactly one of 'layers' (initialise from the teacher's layers) or "
                          "'config' (a fresh encoder)" % key)
    if "layers" in spec:
        return student_from_teacher(teacher_encoder, spec["layers"], spec.get("copy_pooler", True),
                                    key=key + ".layers", **spec.get("overrides", {}))
    config = spec["config"]
    if isinstance(config, dict):  # keys not given follow the teacher (vocabulary, positions, type...)
        base = teacher_encoder.config.to_dict()
        if "hidden_size" in config and "intermediate_size" not in config:
            base["intermediate_size"] = None  # 4 * the student's hidden size
        config = dict(base, **config)
    if spec.get("overrides"):
        config = dict(EncoderConfig.load(config).to_dict(), **spec["overrides"])
    student = student_from_config(config, key + ".config")
    check_vocab_size(teacher_encoder, student, key + ".config.vocab_size")
    return student


def check_vocab_size(teacher_encoder, student_encoder, key: str) -> None:
    """Teacher and student read the same token ids: their embedding tables must have equal rows."""
    t, s = teacher_encoder.config.vocab_size, student_encoder.config.vocab_size
    if t != s:
        raise ConfigError("%s: the student's vocab_size %d differs from the teacher's %d; distillation "
                          "feeds both the same token ids, so they must share one vocabulary" % (key, s, t))


def check_tokenizer(teacher, task: str, student_reader, key: str = "distill") -> None:
    """The student's reader must tokenize with the teacher's vocabulary (same tokens, same ids)."""
    t_tok, s_tok = teacher.reader(task).tokenizer, student_reader.tokenizer
    where = "%s: task %r" % (key, task)
    if t_tok.vocab_size != s_tok.vocab_size:
        raise ConfigError("%s: the student's vocabulary (%s, %d tokens) differs from the teacher's (%s, %d "
                          "tokens)" % (where, _files(s_tok), s_tok.vocab_size, _files(t_tok), t_tok.vocab_size))
    ids = list(range(t_tok.vocab_size))
    t_tokens, s_tokens = t_tok.convert_ids_to_tokens(ids), s_tok.convert_ids_to_tokens(ids)
    if t_tokens != s_tokens:
        first = next(i for i, (a, b) in enumerate(zip(t_tokens, s_tokens)) if a != b)
        raise ConfigError("%s: the student's vocabulary (%s) differs from the teacher's (%s) at id %d: "
                          "%r vs %r" % (where, _files(s_tok), _files(t_tok), first, s_tokens[first], t_tokens[first]))


def check_label_map(teacher, task: str, student_reader, key: str = "distill") -> None:
    """The student's labels must be the teacher's, in the same id order."""
    teacher_labels = teacher.definition(task).get("label_vocab")
    student_labels = student_reader.label_vocab()
    if teacher_labels is None or student_labels is None or list(teacher_labels) == list(student_labels):
        return
    extra = [l for l in student_labels if l not in teacher_labels]
    missing = [l for l in teacher_labels if l not in student_labels]
    detail = ("student-only labels %s" % extra if extra else "") + \
             ("; " if extra and missing else "") + ("teacher-only labels %s" % missing if missing else "")
    raise ConfigError("%s: task %r: the student's label map (%s) differs from the teacher's (%s): %s"
                      % (key, task, _label_source(student_reader), teacher.source(task),
                         detail or "same labels in another id order"))


def _files(tokenizer) -> str:
    return ", ".join(getattr(tokenizer, "files", ()) or ()) or "<in memory>"


def _label_source(reader) -> str:
    args = getattr(reader, "_init_args", {})
    for name in ("label_map_config", "label_map"):
        if isinstance(args.get(name), str):
            return args[name]
    return getattr(reader, "input_file", None) or "reader %s" % type(reader).__name__


def build_heads(teacher, tasks: Sequence[str], student_encoder, mode: str = "copy",
                key: str = "distill.student.heads") -> Dict[str, Any]:
    """Task -> student head, built from the teacher's saved head definitions.

    ``mode='copy'``: the teacher's weights (needs the teacher's hidden size); ``'fresh'``: new
    random weights with ``input_dim`` = the student's hidden size. Heads the teacher shares
    between tasks stay shared.
    """
    from paddlepalm.registry import HEADS

    if mode not in HEAD_MODES:
        raise ConfigError("%s: expected one of %s, got %r" % (key, ", ".join(HEAD_MODES), mode))
    width = student_encoder.config.hidden_size
    heads: Dict[str, Any] = {}
    by_owner: Dict[int, Any] = {}
    for task in tasks:
        teacher_head = teacher.head(task)
        if id(teacher_head) in by_owner:
            heads[task] = by_owner[id(teacher_head)]
            continue
        spec = teacher.definition(task)["head"]
        args = dict(spec["args"])
        if "input_dim" in args:
            if mode == "copy" and args["input_dim"] != width:
                raise ConfigError("%s: cannot copy task %r's head: the teacher's is %d wide, the student %d; "
                                  "use heads: fresh" % (key, task, args["input_dim"], width))
            args["input_dim"] = width
        head = HEADS.get(spec["type"])(phase="train", **args)
        if mode == "copy":
            head.set_state_dict({k: paddle.to_tensor(v.numpy()) for k, v in teacher_head.state_dict().items()})
        head.attach_backbone(student_encoder)
        head.train()
        by_owner[id(teacher_head)] = heads[task] = head
    return heads
