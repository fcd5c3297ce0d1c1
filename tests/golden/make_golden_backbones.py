#!/usr/bin/env python
"""Golden fixtures for the Canine and NEZHA backbones, from Hugging Face transformers + PyTorch.

Like ``make_golden.py`` (whose helpers it reuses), this runs the reference implementations on
randomly initialised SMALL configs and saves weights + outputs, so the tests compare paddlepalm's
encoders to them with numpy only. transformers is pinned to 4.57.6: the last 4.x release, which
still ships ``NezhaModel`` (under ``models/deprecated``) next to ``CanineModel``.

What it writes under ``tests/fixtures/``:

* ``tiny_canine_hf/`` (``config.json`` + ``model.safetensors``): ``CanineModel`` with hidden 32,
  2 deep layers, 4 heads, ffn 64, downsampling_rate 4, upsampling_kernel_size 4, 4 hash functions
  x 256 buckets, local_transformer_stride 8 (so the local attention really cuts rows into
  blocks), ``torch.manual_seed(0)``; biases and LayerNorm parameters randomised too.
* ``tiny_canine_golden.npz``: 4 texts (English, Chinese, Arabic, emoji, mixed) as code points by
  ``CanineTokenizer`` padded to L=26 (not a multiple of 4) plus one pair: ``input_ids``,
  ``token_type_ids``, ``attention_mask``, ``last_hidden_state`` [4, 26, 32], ``pooler_output``.
  ``texts_json`` / ``pair_json`` hold the inputs.
* ``canine_codepoints.json``: ``CanineTokenizer`` ids (with special code points) and token type
  ids for tricky strings and pairs (combining marks, ZWJ emoji, RTL, CJK, astral plane, tabs).
* ``tiny_ernie_hf/`` + ``tiny_ernie_golden.npz``: ``ErnieModel`` (ERNIE 3.0 switches:
  ``use_task_id=True``, 3 task types, 4 token types) with vocab 100, hidden 32, 2 layers, run
  with non-zero ``task_type_ids``.
* ``tiny_nezha_hf/`` + ``tiny_nezha_golden.npz``: ``NezhaModel`` with vocab 100, hidden 32, 2
  layers, 4 heads, ffn 64, 64 positions, max_relative_position 5 (rows of 14 tokens are longer
  than the clipping distance, so clipping is exercised).

Run (never install torch/transformers into the project's environment)::

    python3 -m venv --system-site-packages /work/venv-backbones
    /work/venv-backbones/bin/pip install torch==2.13.0 transformers==4.57.6
    HF_HUB_OFFLINE=1 /work/venv-backbones/bin/python tests/golden/make_golden_backbones.py
    python tests/golden/make_golden_backbones.py --verify-only   # numpy only
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import DEFAULT_FIXTURES, f32, from_pretrained_f32, i64, versions  # noqa: E402

TINY_CANINE_CFG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       downsampling_rate=4, upsampling_kernel_size=4, num_hash_functions=4,
                       num_hash_buckets=256, local_transformer_stride=8, max_position_embeddings=256,
                       type_vocab_size=16, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
CANINE_TEXTS = ["Canine reads characters.", "北京欢迎你，朋友们！", "مرحبا بالعالم", "ok 👍🏽 日本 مرحبا"]
CANINE_PAIR = ("问题：谁?", "answer 🎉")
CODEPOINT_SAMPLES = ["", "a", "Hello, World!", "naïve café", "e\u0301 combining", "👨‍👩‍👧 family",
                     "שלום עולם", "مرحبا", "中文字符测试", "\U0001F600\U00010348 astral", "tab\there\nnew",
                     "  leading and trailing  "]
CODEPOINT_PAIRS = [("question?", "上下文 context"), ("", "b")]

TINY_NEZHA_CFG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, max_relative_position=5,
                      type_vocab_size=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
NEZHA_LENGTHS = [14, 9, 3]
TINY_ERNIE_CFG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, type_vocab_size=4,
                      task_type_vocab_size=3, use_task_id=True)


def _randomise_biases_and_norms(model):
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))


def _save_hf(model, hf_dir: Path):
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    for f in hf_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()


def make_canine(out_dir: Path, meta):
    import torch
    from transformers import CanineConfig, CanineModel, CanineTokenizer

    tok = CanineTokenizer()
    torch.manual_seed(0)
    model = CanineModel(CanineConfig(**TINY_CANINE_CFG))
    _randomise_biases_and_norms(model)
    model.eval()
    _save_hf(model, out_dir / "tiny_canine_hf")
    reloaded = from_pretrained_f32(CanineModel, str(out_dir / "tiny_canine_hf"))
    reloaded.eval()

    batch = tok(CANINE_TEXTS, padding=True, return_tensors="pt")
    if batch["input_ids"].shape[1] % TINY_CANINE_CFG["downsampling_rate"] == 0:
        raise AssertionError("the golden length must not be a multiple of the downsampling rate")
    pair = tok([CANINE_PAIR[0]], [CANINE_PAIR[1]], return_tensors="pt")
    with torch.no_grad():
        out = reloaded(**batch)
        out_pair = reloaded(**pair)
        check = model(**batch)
    if not torch.allclose(out.last_hidden_state, check.last_hidden_state, atol=1e-6):
        raise AssertionError("save/reload mismatch for tiny Canine")
    np.savez_compressed(
        out_dir / "tiny_canine_golden.npz",
        input_ids=i64(batch["input_ids"]), token_type_ids=i64(batch["token_type_ids"]),
        attention_mask=i64(batch["attention_mask"]), last_hidden_state=f32(out.last_hidden_state),
        pooler_output=f32(out.pooler_output), pair_input_ids=i64(pair["input_ids"]),
        pair_token_type_ids=i64(pair["token_type_ids"]),
        pair_last_hidden_state=f32(out_pair.last_hidden_state), pair_pooler_output=f32(out_pair.pooler_output),
        texts_json=np.array(json.dumps(CANINE_TEXTS, ensure_ascii=False)),
        pair_json=np.array(json.dumps(list(CANINE_PAIR), ensure_ascii=False)),
        meta_json=np.array(json.dumps(dict(meta, model="tiny-canine-seed0"))))

    samples = [{"text": t, "ids": tok(t)["input_ids"]} for t in CODEPOINT_SAMPLES]
    pairs = [{"text": a, "text_pair": b, "ids": tok(a, b)["input_ids"],
              "token_type_ids": tok(a, b)["token_type_ids"]} for a, b in CODEPOINT_PAIRS]
    with open(out_dir / "canine_codepoints.json", "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "samples": samples, "pairs": pairs}, f, ensure_ascii=False, indent=1)


def make_nezha(out_dir: Path, meta):
    import torch
    from transformers import NezhaConfig, NezhaModel

    torch.manual_seed(0)
    model = NezhaModel(NezhaConfig(**TINY_NEZHA_CFG))
    _randomise_biases_and_norms(model)
    model.eval()
    _save_hf(model, out_dir / "tiny_nezha_hf")
    reloaded = from_pretrained_f32(NezhaModel, str(out_dir / "tiny_nezha_hf"))
    reloaded.eval()
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros((len(NEZHA_LENGTHS), max(NEZHA_LENGTHS)), dtype=torch.long)
    types = torch.zeros_like(ids)
    for r, n in enumerate(NEZHA_LENGTHS):
        ids[r, :n] = torch.randint(1, TINY_NEZHA_CFG["vocab_size"], (n,), generator=gen)
        types[r, n // 2:n] = 1
    mask = (ids != 0).long()
    with torch.no_grad():
        out = reloaded(input_ids=ids, token_type_ids=types, attention_mask=mask)
    np.savez_compressed(
        out_dir / "tiny_nezha_golden.npz", input_ids=i64(ids), token_type_ids=i64(types),
        attention_mask=i64(mask), last_hidden_state=f32(out.last_hidden_state),
        pooler_output=f32(out.pooler_output),
        meta_json=np.array(json.dumps(dict(meta, model="tiny-nezha-seed0"))))


def make_ernie(out_dir: Path, meta):
    import torch
    from transformers import ErnieConfig, ErnieModel

    torch.manual_seed(0)
    model = ErnieModel(ErnieConfig(**TINY_ERNIE_CFG))
    _randomise_biases_and_norms(model)
    model.eval()
    _save_hf(model, out_dir / "tiny_ernie_hf")
    reloaded = from_pretrained_f32(ErnieModel, str(out_dir / "tiny_ernie_hf"))
    reloaded.eval()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(1, TINY_ERNIE_CFG["vocab_size"], (3, 10), generator=gen)
    ids[2, 6:] = 0
    mask = (ids != 0).long()
    types = torch.randint(0, 4, (3, 10), generator=gen)
    tasks = torch.randint(0, 3, (3, 10), generator=gen)
    with torch.no_grad():
        out = reloaded(input_ids=ids, token_type_ids=types, task_type_ids=tasks, attention_mask=mask)
    np.savez_compressed(
        out_dir / "tiny_ernie_golden.npz", input_ids=i64(ids), token_type_ids=i64(types),
        task_type_ids=i64(tasks), attention_mask=i64(mask), last_hidden_state=f32(out.last_hidden_state),
        pooler_output=f32(out.pooler_output), meta_json=np.array(json.dumps(dict(meta, model="tiny-ernie-seed0"))))


FILES = ["tiny_canine_golden.npz", "tiny_nezha_golden.npz", "canine_codepoints.json",
         "tiny_canine_hf/config.json", "tiny_canine_hf/model.safetensors",
         "tiny_nezha_hf/config.json", "tiny_nezha_hf/model.safetensors",
         "tiny_ernie_golden.npz", "tiny_ernie_hf/config.json", "tiny_ernie_hf/model.safetensors"]


def verify(out_dir: Path) -> int:
    total = 0
    for name in FILES:
        path = out_dir / name
        size = path.stat().st_size
        total += size
        print("%-36s %8d bytes" % (name, size))
        if name.endswith(".npz"):
            with np.load(path) as z:
                for k in z.files:
                    print("  %-26s %-8s %s" % (k, z[k].dtype, z[k].shape))
    print("total: %d bytes" % total)
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures-dir", default=str(DEFAULT_FIXTURES))
    ap.add_argument("--verify-only", action="store_true")
    args = ap.parse_args(argv)
    out_dir = Path(args.fixtures_dir)
    if not args.verify_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(1)
        meta = versions()
        make_canine(out_dir, meta)
        make_nezha(out_dir, meta)
        make_ernie(out_dir, meta)
    verify(out_dir)


if __name__ == "__main__":
    main()
