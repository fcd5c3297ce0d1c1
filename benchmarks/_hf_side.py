"""Hugging Face transformers + PyTorch worker for the benchmarks (run in its own process).

Started by ``bench_train.py`` / ``bench_step.py`` / ``bench_infer.py`` / ``bench_joint.py`` with
the interpreter given by their ``--hf-python`` option; it needs torch, transformers and numpy,
not paddle. It prints one ``BENCH_RESULT {json}`` line.

    python benchmarks/_hf_side.py train CONFIG.json   # SNIPS fine-tune: tokenize + train + eval
    python benchmarks/_hf_side.py step CONFIG.json    # fixed-shape train-step timing
    python benchmarks/_hf_side.py joint CONFIG.json   # SNIPS intent + slots, one encoder pass (bench_joint)

The batch order of ``train`` and ``joint`` comes from paddlepalm's own ``reader/batching.py``
(read by file path, it needs numpy only), so both sides see the same batches and the same
padding; ``joint`` scores slots with paddlepalm's ``metrics/sequence.py`` the same way.
"""
import json
import os
import sys
import time

_T0 = time.perf_counter()
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import common  # noqa: E402  (no paddle, no torch)


def _palm_batching():
    return common.palm_module("paddlepalm.reader.batching")


def _read_tsv(path):
    """PALM intent TSV (``label<TAB>text_a`` with a header) -> (labels, texts)."""
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        li, ti = header.index("label"), header.index("text_a")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            labels.append(int(cols[li]))
            texts.append(cols[ti])
    return labels, texts


def _pad(seqs, pad_id=0):
    import numpy as np

    longest = max(len(s) for s in seqs)
    ids = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), longest), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids, mask


def _multiplier(step, warmup, total):
    """paddlepalm's TriangularScheduler, step for step (linear warmup, then linear decay to 0)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1.0 - step / max(1, total))


def _versions():
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads()}


def train(cfg):
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    t_import = time.perf_counter() - _T0
    transformers.logging.set_verbosity_error()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    batching = _palm_batching()
    start, cpu_start = time.perf_counter(), time.process_time()

    # -- tokenize (fast Rust tokenizer, whole split in one call)
    tok = AutoTokenizer.from_pretrained(cfg["model_dir"])
    train_labels, train_texts = _read_tsv(cfg["train_tsv"])
    test_labels, test_texts = _read_tsv(cfg["test_tsv"])
    train_ids = tok(train_texts, truncation=True, max_length=cfg["max_len"])["input_ids"]
    test_ids = tok(test_texts, truncation=True, max_length=cfg["max_len"])["input_ids"]
    t_tokenize = time.perf_counter() - start

    # -- model
    t = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg["model_dir"], num_labels=cfg["num_classes"], hidden_dropout_prob=cfg["dropout"],
        attention_probs_dropout_prob=cfg["dropout"], classifier_dropout=cfg["dropout"])
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": cfg["weight_decay"]},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    t_load = time.perf_counter() - t

    # -- train: the same batch plan as paddlepalm's Batcher (seeded shuffle + length buckets)
    t = time.perf_counter()
    lengths = [len(s) for s in train_ids]
    rng = np.random.default_rng(cfg["seed"])
    plan = []
    for _ in range(cfg["epochs"]):
        plan += batching.batch_order(lengths, cfg["batch_size"], True, rng, bucket=cfg["bucket"])
    if cfg.get("max_steps"):
        plan = plan[:cfg["max_steps"]]
    total = len(plan)
    warmup = int(cfg["warmup"] * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _multiplier(s, warmup, total))
    labels_np = np.asarray(train_labels, dtype=np.int64)
    model.train()
    tokens = 0
    pending = []
    for step, idx in enumerate(plan, 1):
        ids, mask = _pad([train_ids[i] for i in idx], tok.pad_token_id)
        tokens += ids.size
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    token_type_ids=torch.zeros_like(torch.from_numpy(ids)),
                    labels=torch.from_numpy(labels_np[idx]))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        pending.append(out.loss.detach())
        if cfg.get("print_steps") and step % cfg["print_steps"] == 0:
            print("hf step %d/%d loss %.4f" % (step, total, float(torch.stack(pending).mean())), flush=True)
            pending = []
    t_train = time.perf_counter() - t

    # -- eval on the test split, file order, dynamic padding
    t = time.perf_counter()
    model.eval()
    preds = []
    with torch.inference_mode():
        for s in range(0, len(test_ids), cfg["eval_batch_size"]):
            ids, mask = _pad(test_ids[s:s + cfg["eval_batch_size"]], tok.pad_token_id)
            logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                           token_type_ids=torch.zeros_like(torch.from_numpy(ids))).logits
            preds += logits.argmax(-1).tolist()
    accuracy = float(np.mean(np.asarray(preds) == np.asarray(test_labels)))
    t_eval = time.perf_counter() - t
    e2e = time.perf_counter() - start
    return {"side": "hf", "e2e_cpu_s": time.process_time() - cpu_start, "import_s": t_import, "tokenize_s": t_tokenize, "load_s": t_load, "train_s": t_train,
            "eval_s": t_eval, "e2e_s": e2e, "steps": total, "train_examples": int(sum(len(b) for b in plan)),
            "train_tokens": int(tokens), "accuracy": accuracy, "peak_rss_mb": common.peak_rss_mb(),
            "loadavg_end": os.getloadavg()[0],
            "versions": _versions()}


def step(cfg):
    """Fixed-shape train steps: forward + backward + clip + AdamW; returns seconds per step."""
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg["model_dir"], num_labels=7, hidden_dropout_prob=cfg["dropout"],
        attention_probs_dropout_prob=cfg["dropout"], classifier_dropout=cfg["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    out = {}
    for b, length in cfg["shapes"]:
        rng = np.random.default_rng(0)
        ids = torch.from_numpy(rng.integers(1000, 20000, (b, length)).astype(np.int64))
        mask = torch.ones_like(ids)
        labels = torch.from_numpy(rng.integers(0, 7, (b,)).astype(np.int64))
        times = []
        for i in range(cfg["warmup_steps"] + cfg["steps"]):
            t = time.perf_counter()
            loss = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            float(loss)
            if i >= cfg["warmup_steps"]:
                times.append(time.perf_counter() - t)
        out["%dx%d" % (b, length)] = times
    return {"side": "hf", "step_times": out, "versions": _versions(), "peak_rss_mb": common.peak_rss_mb()}


# ----------------------------------------------------------------------------- joint intent + slots
def read_joint_tsv(path, sep="\x02"):
    """paddlepalm's ``joint_label`` TSV (header ``text_a<TAB>label<TAB>tags``; words and tags each
    joined by ``\\x02``, the intent by name) -> ``[(words, intent, tags)]``, split and stripped as
    JointLabelReader does."""
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        wi, li, ti = header.index("text_a"), header.index("label"), header.index("tags")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows.append(([w.strip() for w in cols[wi].strip().split(sep)], cols[li].strip(),
                         [t.strip() for t in cols[ti].strip().split(sep)]))
    return rows


def fit_words(grouped, budget):
    """SequenceLabelReader's cut of a long sentence: whole words from the start while their pieces
    fit in ``budget`` (a first word longer than the budget is kept, cut). ``grouped``: the pieces of
    each word -> (flat piece ids, number of words kept); the words left out are predicted 'O'."""
    ids = []
    for word, pieces in enumerate(grouped):
        if len(ids) + len(pieces) > budget:
            return (list(pieces[:budget]), 1) if word == 0 else (ids, word)
        ids += pieces
    return ids, len(grouped)


def joint_features(tok, rows, max_len, intent_ids, tag_ids):
    """Rows -> features as JointLabelReader makes them: ``[CLS] pieces [SEP]`` over the words that
    fit, the first piece of each kept word (``starts``), tag ids of the kept words, intent id, and
    all gold tags (the metric scores every word of the file)."""
    enc = tok([r[0] for r in rows], is_split_into_words=True, add_special_tokens=False)
    features = []
    for i, (words, intent, tags) in enumerate(rows):
        grouped = [[] for _ in words]
        for piece, word in zip(enc["input_ids"][i], enc.word_ids(i)):
            grouped[word].append(piece)
        grouped = [g or [tok.unk_token_id] for g in grouped]  # a word with no pieces reads as [UNK]
        ids, kept = fit_words(grouped, max_len - 2)
        starts, position = [], 1
        for g in grouped[:kept]:
            starts.append(position)
            position += len(g)
        features.append({"ids": [tok.cls_token_id] + ids + [tok.sep_token_id], "starts": starts,
                         "tags": [tag_ids[t] for t in tags[:kept]], "intent": intent_ids[intent], "gold": tags})
    return features


def _joint_batch(features, idx, pad_id):
    import numpy as np

    rows = [features[i] for i in idx]
    ids, mask = _pad([r["ids"] for r in rows], pad_id)
    width = max(len(r["starts"]) for r in rows)
    starts = np.zeros((len(rows), width), dtype=np.int64)
    tags = np.full((len(rows), width), -100, dtype=np.int64)
    for k, r in enumerate(rows):
        starts[k, :len(r["starts"])] = r["starts"]
        tags[k, :len(r["tags"])] = r["tags"]
    return {"ids": ids, "mask": mask, "starts": starts, "num_words": np.asarray([len(r["starts"]) for r in rows]),
            "tags": tags, "intent": np.asarray([r["intent"] for r in rows], dtype=np.int64)}


def joint(cfg):
    """JointBERT-style intent + slot fine-tune: one encoder pass per batch, an intent head on the
    pooled [CLS] (as paddlepalm's Classify head) and a per-word softmax slot head on the first
    sub-word of each word; loss = sum, or with ``balancer='uncertainty'`` Kendall's
    ``sum_i exp(-s_i) L_i + s_i`` (paddlepalm's UncertaintyWeighting). Batches from paddlepalm's
    batching code; dev evaluations at the flagship's steps; test intent accuracy and entity F1
    with paddlepalm's metric code."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import AutoModel, AutoTokenizer

    t_import = time.perf_counter() - _T0
    transformers.logging.set_verbosity_error()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    batching = _palm_batching()
    sequence = common.palm_module("paddlepalm.metrics.sequence")
    if cfg["balancer"] not in ("uncertainty", "fixed", "none"):
        raise SystemExit("the HF side implements --balancer uncertainty, fixed and none, not %r" % cfg["balancer"])
    start, cpu_start = time.perf_counter(), time.process_time()

    # -- read + tokenize (fast Rust tokenizer, each split in one call)
    tok = AutoTokenizer.from_pretrained(cfg["model_dir"])
    with open(cfg["intent_labels"], encoding="utf-8") as f:
        intent_names = json.load(f)
    with open(cfg["slot_label_map"], encoding="utf-8") as f:
        tag_ids = json.load(f)
    tag_names = [t for t, _ in sorted(tag_ids.items(), key=lambda kv: kv[1])]
    intent_ids = {name: i for i, name in enumerate(intent_names)}
    splits = {name: joint_features(tok, read_joint_tsv(cfg[name + "_tsv"]), cfg["max_len"], intent_ids, tag_ids)
              for name in ("train", "dev", "test")}
    t_tokenize = time.perf_counter() - start

    # -- model: encoder (with its pooler) + two heads
    t = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    encoder = AutoModel.from_pretrained(cfg["model_dir"])  # dropout 0.1 from its config, as paddlepalm's
    hidden = encoder.config.hidden_size
    heads = torch.nn.ModuleDict({"intent": torch.nn.Linear(hidden, len(intent_names)),
                                 "slot": torch.nn.Linear(hidden, len(tag_names))})
    for layer in heads.values():  # paddlepalm's dense(): truncated normal, std 0.02; zero bias
        torch.nn.init.trunc_normal_(layer.weight, std=0.02, a=-0.04, b=0.04)
        torch.nn.init.zeros_(layer.bias)
    dropout = torch.nn.Dropout(cfg["dropout"])
    log_vars = torch.nn.Parameter(torch.zeros(2)) if cfg["balancer"] == "uncertainty" else None

    def no_decay(name):  # paddlepalm's NO_DECAY: biases and LayerNorm parameters
        return name.endswith("bias") or "LayerNorm" in name or "norm" in name

    groups = []
    for module, lr in ((encoder, cfg["lr"]), (heads, cfg["head_lr"] or cfg["lr"])):
        named = list(module.named_parameters())
        groups.append({"params": [p for n, p in named if not no_decay(n)], "lr": lr,
                       "weight_decay": cfg["weight_decay"]})
        groups.append({"params": [p for n, p in named if no_decay(n)], "lr": lr, "weight_decay": 0.0})
    if log_vars is not None:  # balancing.* in paddlepalm: the base LR, no decay
        groups.append({"params": [log_vars], "lr": cfg["lr"], "weight_decay": 0.0})
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
    t_load = time.perf_counter() - t

    def forward(b):
        out = encoder(input_ids=torch.from_numpy(b["ids"]), attention_mask=torch.from_numpy(b["mask"]),
                      token_type_ids=torch.zeros_like(torch.from_numpy(b["ids"])))
        intent_logits = heads["intent"](dropout(out.pooler_output))
        starts = torch.from_numpy(b["starts"])
        words = out.last_hidden_state[torch.arange(starts.shape[0]).unsqueeze(1), starts]
        return intent_logits, heads["slot"](dropout(words))

    def evaluate(features):
        encoder.eval()
        heads.eval()
        intents, golds, preds = [], [], []
        with torch.inference_mode():
            for s in range(0, len(features), cfg["eval_batch_size"]):
                idx = list(range(s, min(s + cfg["eval_batch_size"], len(features))))
                intent_logits, slot_logits = forward(_joint_batch(features, idx, tok.pad_token_id))
                intents += intent_logits.argmax(-1).tolist()
                best = slot_logits.argmax(-1).numpy()
                for k, i in enumerate(idx):
                    f = features[i]
                    n = len(f["starts"])
                    preds.append([tag_names[j] for j in best[k, :n]] + ["O"] * (len(f["gold"]) - n))
                    golds.append(f["gold"])
        encoder.train()
        heads.train()
        scheme = "BIOES" if any(t[:2] in ("E-", "S-") for seq in golds + preds for t in seq) else "BIO"
        return {"accuracy": float(np.mean(np.asarray(intents) == np.asarray([f["intent"] for f in features]))),
                "f1": float(sequence.entity_f1(golds, preds, scheme=scheme)["f1"])}

    # -- train: paddlepalm's batch plan (seeded shuffle + length buckets), epoch after epoch
    t = time.perf_counter()
    train = splits["train"]
    lengths = [len(f["ids"]) for f in train]
    rng = np.random.default_rng(cfg["seed"])
    total = cfg["total_steps"]
    plan = []
    while len(plan) < total:
        plan += batching.batch_order(lengths, cfg["batch_size"], True, rng, bucket=True)
    plan = plan[:total]
    warmup = int(cfg["warmup"] * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _multiplier(s, warmup, total))
    encoder.train()
    heads.train()
    tokens, dev_eval_s, dev = 0, 0.0, []
    pending = []
    for step, idx in enumerate(plan, 1):
        b = _joint_batch(train, idx, tok.pad_token_id)
        tokens += b["ids"].size
        intent_logits, slot_logits = forward(b)
        width = slot_logits.shape[1]
        mask = (torch.arange(width).unsqueeze(0) < torch.from_numpy(b["num_words"]).unsqueeze(1)).float()
        tags = torch.from_numpy(b["tags"]).clamp(min=0)
        per_word = F.cross_entropy(slot_logits.reshape(-1, slot_logits.shape[-1]), tags.reshape(-1),
                                   reduction="none").reshape(tags.shape)
        slot_loss = (per_word * mask).sum() / mask.sum().clamp(min=1.0)
        intent_loss = F.cross_entropy(intent_logits, torch.from_numpy(b["intent"]))
        losses = torch.stack([slot_loss, intent_loss])
        loss = (torch.exp(-log_vars) * losses + log_vars).sum() if log_vars is not None else losses.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        pending.append(losses.detach())
        if cfg.get("print_steps") and step % cfg["print_steps"] == 0:
            print("hf step %d/%d slot %.4f intent %.4f" % ((step, total) + tuple(torch.stack(pending).mean(0).tolist())),
                  flush=True)
            pending = []
        if step % cfg["eval_steps"] == 0 or step == total:  # the flagship: every eval_steps, and at the end
            e = time.perf_counter()
            dev.append(dict(evaluate(splits["dev"]), step=step))
            dev_eval_s += time.perf_counter() - e
    t_train = time.perf_counter() - t

    t = time.perf_counter()
    metrics = evaluate(splits["test"])
    t_eval = time.perf_counter() - t
    e2e = time.perf_counter() - start
    return {"side": "hf", "e2e_cpu_s": time.process_time() - cpu_start, "import_s": t_import,
            "prepare_s": t_tokenize + t_load, "tokenize_s": t_tokenize, "load_s": t_load, "train_s": t_train,
            "dev_eval_s": dev_eval_s, "evals": len(dev), "eval_s": t_eval, "e2e_s": e2e, "steps": total,
            "train_examples": int(sum(len(b) for b in plan)), "train_tokens": int(tokens),
            "intent_accuracy": metrics["accuracy"], "slot_f1": metrics["f1"], "dev": dev,
            "slot_head": "softmax", "peak_rss_mb": common.peak_rss_mb(), "loadavg_end": os.getloadavg()[0],
            "versions": _versions()}


MODES = {"train": train, "step": step, "joint": joint}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in MODES:
        raise SystemExit("usage: _hf_side.py {%s} CONFIG.json" % "|".join(MODES))
    with open(argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    common.emit_result(MODES[argv[0]](cfg))


if __name__ == "__main__":
    main()
