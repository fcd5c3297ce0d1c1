"""Hugging Face transformers + PyTorch worker for the benchmarks (run in its own process).

Started by ``bench_train.py`` / ``bench_step.py`` / ``bench_infer.py`` with the interpreter given
by their ``--hf-python`` option (default /tmp/refvenv/bin/python); it needs torch, transformers
and numpy, not paddle. It prints one ``BENCH_RESULT {json}`` line.

    python benchmarks/_hf_side.py train CONFIG.json   # SNIPS fine-tune: tokenize + train + eval
    python benchmarks/_hf_side.py step CONFIG.json    # fixed-shape train-step timing

The batch order of ``train`` comes from paddlepalm's own ``reader/batching.py`` (loaded by file
path, it needs numpy only), so both sides see the same batches and the same padding.
"""
import importlib.util
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
    path = os.path.join(ROOT, "paddlepalm", "reader", "batching.py")
    spec = importlib.util.spec_from_file_location("_palm_batching", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("train", "step"):
        raise SystemExit("usage: _hf_side.py {train|step} CONFIG.json")
    with open(argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    common.emit_result({"train": train, "step": step}[argv[0]](cfg))


if __name__ == "__main__":
    main()
