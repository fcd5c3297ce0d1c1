#!/usr/bin/env python
"""Per-step cost of each balancer (paddlepalm/balancing) against fixed weights, on one joint step:
one encoder pass over a shared-input batch, one head per task, ``Balancer.combine``, AdamW.

  python benchmarks/bench_balancers.py                      # 2 tasks, tiny random-init encoder
  python benchmarks/bench_balancers.py --tasks 3 --hidden 384 --layers 6 --length 32
  python benchmarks/bench_balancers.py --grad-api           # also paddle.grad vs backward(retain_graph)
  python benchmarks/bench_balancers.py --surgery --methods fixed --hidden 384 --layers 6 --vocab 30522
                                                            # the surgery alone at MiniLM-L6 size

Paired and alternating: every round runs ``--steps`` steps of each balancer, in an order rotated
from round to round, on the same model and batch; the table gives the median step time and the
median over rounds of each balancer's time divided by fixed's time in the same round. The
encoder is random-init (the cost does not depend on the weights). ``--grad-api`` times the two
ways of getting per-task gradients with the CPU fast paths off (a second ``backward(retain_graph=
True)`` through their PyLayers crashes Paddle 3.3, so the balancers use ``paddle.grad``).
"""
import argparse
import os
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, ROOT)
import common  # noqa: E402

METHODS = ["fixed", "uncertainty", "dwa", "gradnorm", "pcgrad", "cagrad"]


def build(args):
    import numpy as np
    import paddle

    import paddlepalm  # noqa: F401
    from paddlepalm.backbone import build_encoder
    from paddlepalm.head import Classify, SequenceLabel

    paddle.seed(0)
    encoder = build_encoder(dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                                 num_attention_heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden,
                                 max_position_embeddings=max(64, args.length), type_vocab_size=2,
                                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, model_type="bert"))
    encoder.train()
    heads = {"intent": Classify(7, args.hidden), "slot": SequenceLabel(40, args.hidden)}
    if args.tasks == 3:
        heads["domain"] = Classify(3, args.hidden)
    rng = np.random.default_rng(0)
    b, n = args.batch, args.length
    words = n - 2
    batch = {"input_ids": rng.integers(5, args.vocab, size=(b, n)), "label": rng.integers(0, 7, size=(b,)),
             "word_starts": np.tile(np.arange(1, words + 1), (b, 1)), "num_words": np.full((b,), words),
             "word_labels": rng.integers(0, 40, size=(b, words))}
    batch = {k: paddle.to_tensor(v.astype("int64")) for k, v in batch.items()}
    domain = paddle.to_tensor(rng.integers(0, 3, size=(b,)).astype("int64"))
    for h in heads.values():
        h.train()

    def losses():
        out = encoder(batch["input_ids"])
        result = {t: heads[t](out, batch)["loss"] for t in ("intent", "slot")}
        if "domain" in heads:
            result["domain"] = heads["domain"](out, dict(batch, label=domain))["loss"]
        return result

    shared = [p for p in encoder.parameters() if not p.stop_gradient]
    task_params = {t: list(h.parameters()) for t, h in heads.items()}
    return losses, shared, task_params


def run_steps(step, count):
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def bench_methods(args, losses, shared, task_params):
    import paddle

    from paddlepalm.balancing import BALANCERS

    sides = {}
    for name in args.methods:
        bal = BALANCERS.get(name)(tasks=sorted(task_params))
        opt = paddle.optimizer.AdamW(1e-4, parameters=shared + [p for ps in task_params.values() for p in ps]
                                     + bal.parameters())

        def step(bal=bal, opt=opt):
            bal.combine(losses(), shared, task_params)
            opt.step()
            opt.clear_grad()

        run_steps(step, args.warmup)
        sides[name] = step
    times = {name: [] for name in sides}
    names = list(sides)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(run_steps(sides[name], args.steps))
    rows = []
    for name in names:
        ratios = [t / f for t, f in zip(times[name], times["fixed"])] if "fixed" in times else []
        bal = BALANCERS.get(name)()
        rows.append([name, bal.backward_passes(len(task_params)), common.median(times[name]) * 1e3,
                     common.median(ratios) if ratios else float("nan")])
    return rows


def bench_grad_api(args, losses, shared, task_params):
    """Per-task gradients: T x paddle.grad vs T x backward(retain_graph=True) + reading .grad."""
    import paddle

    from paddlepalm.balancing.base import flatten

    tasks = sorted(task_params)
    everything = shared + [p for t in tasks for p in task_params[t]]

    def with_grad():
        ls = losses()
        for k, t in enumerate(tasks):
            g = paddle.grad(ls[t], shared + task_params[t], retain_graph=k < len(tasks) - 1, allow_unused=True)
            flatten(g[:len(shared)], shared)

    def with_backward():
        ls = losses()
        for k, t in enumerate(tasks):
            ls[t].backward(retain_graph=k < len(tasks) - 1)
            flatten([p.grad for p in shared], shared)
            for p in everything:
                p.clear_gradient(False)

    sides = {"paddle.grad": with_grad, "backward(retain_graph)": with_backward}
    for f in sides.values():
        run_steps(f, args.warmup)
    times = {k: [] for k in sides}
    for r in range(args.repeats):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[name].append(run_steps(sides[name], args.steps))
    base = times["paddle.grad"]
    return [[name, common.median(v) * 1e3, common.median([a / b for a, b in zip(v, base)])]
            for name, v in times.items()]


def bench_surgery(args, shared, num_tasks):
    """The flat-buffer work of a per-task balancer alone, on random gradients of the shared shapes."""
    import numpy as np
    import paddle

    from paddlepalm.balancing.base import add_flat_to_grads, flatten, gram_matrix, linear_combination
    from paddlepalm.balancing.surgery import cagrad_coefficients, pcgrad_coefficients

    grads = [[paddle.randn(p.shape) for p in shared] for _ in range(num_tasks)]
    rng = np.random.default_rng(0)
    stages = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        stages.setdefault(name, []).append(time.perf_counter() - start)
        return out

    for _ in range(args.repeats):
        flats = timed("flatten T gradients", lambda: [flatten(g, shared) for g in grads])
        gram = timed("Gram matrix (dot products)", lambda: gram_matrix(flats))
        timed("PCGrad coefficients (numpy)", lambda: pcgrad_coefficients(
            gram, [list(rng.permutation([j for j in range(num_tasks) if j != i])) for i in range(num_tasks)]))
        coef = timed("CAGrad coefficients (numpy)", lambda: cagrad_coefficients(gram, 0.5))
        timed("combine + add to .grad", lambda: add_flat_to_grads(shared, linear_combination(flats, coef)))
        for p in shared:
            p.clear_gradient(False)
    return [[name, common.median(v) * 1e3] for name, v in stages.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, choices=(2, 3), default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1000, help="vocabulary size (MiniLM: 30522)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="steps per balancer per round")
    parser.add_argument("--repeats", type=int, default=6, help="rounds (orders rotate between rounds)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--grad-api", action="store_true", help="also compare paddle.grad with backward(retain)")
    parser.add_argument("--surgery", action="store_true", help="also time the flat-buffer work alone")
    parser.add_argument("--threads", type=int, default=None, help=common.THREADS_HELP)
    args = parser.parse_args()
    if "fixed" not in args.methods:
        args.methods = ["fixed"] + args.methods
    threads = args.threads or common.default_threads()
    os.environ.update(common.thread_env(threads))

    import paddle

    losses, shared, task_params = build(args)
    params = sum(int(p.numel()) for p in shared)
    print("# %s" % common.command_line())
    print("# %s; %d threads; encoder hidden=%d layers=%d (%.2fM shared params), batch %dx%d, %d tasks"
          % (common.machine_description(), threads, args.hidden, args.layers, params / 1e6, args.batch,
             args.length, args.tasks))
    print("# %d rounds x %d steps per balancer, order rotated each round\n" % (args.repeats, args.steps))
    if args.methods != ["fixed"]:
        rows = bench_methods(args, losses, shared, task_params)
        print(common.format_table(["balancer", "backward passes", "step ms (median)", "time / fixed (paired)"],
                                  rows))
    if args.surgery:
        print("\nFlat-buffer work of a per-task balancer, %d tasks, %.2fM shared parameters:\n"
              % (args.tasks, params / 1e6))
        print(common.format_table(["stage", "ms (median)"], bench_surgery(args, shared, args.tasks)))
    if args.grad_api:
        from paddlepalm.backbone import fastpath

        fast_forward = fastpath.Linear.forward
        fastpath.Linear.forward = paddle.nn.Linear.forward  # stock linear: retain_graph works there
        try:
            rows = bench_grad_api(args, losses, shared, task_params)
        finally:
            fastpath.Linear.forward = fast_forward
        print("\nPer-task gradients, %d tasks, CPU fast paths off:\n" % args.tasks)
        print(common.format_table(["method", "ms (median)", "time / paddle.grad (paired)"], rows))


if __name__ == "__main__":
    main()
