#!/usr/bin/env python
"""Paired timings of paddlepalm's CPU fast paths against the stock Paddle formulation they replace.

  python benchmarks/bench_kernels.py                 # LayerNorm and CRF log-partition, fwd + bwd
  python benchmarks/bench_kernels.py --threads 2

* ``layer_norm``: ``fastpath.LayerNorm`` vs ``paddle.nn.LayerNorm`` (forward + backward) at the
  encoder's shapes [B, L, 384];
* ``crf``: ``LinearChainCRF.log_partition`` (shifted exp-space GEMM recursion) vs the textbook
  recursion (broadcast add to [B, C, C] + ``logsumexp`` over the previous tag), forward + backward,
  72 tags (SNIPS slots).

Variants alternate within every round; the table gives the median over rounds of each variant's
best-of-``--inner`` time, and the median of the per-round ratios.
"""
import argparse
import os
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import common  # noqa: E402


def logsumexp_log_partition(crf, emissions, mask):
    """``log Z`` by the textbook forward recursion (the formulation paddlepalm used before)."""
    import paddle

    maskf = mask.astype(emissions.dtype)
    alpha = crf.start.unsqueeze(0) + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        scores = alpha.unsqueeze(2) + crf.transitions.unsqueeze(0) + emissions[:, t].unsqueeze(1)
        step = maskf[:, t].unsqueeze(1)
        alpha = paddle.logsumexp(scores, axis=1) * step + alpha * (1.0 - step)
    return paddle.logsumexp(alpha + crf.end.unsqueeze(0), axis=1)


def _best(fn, inner):
    fn()
    best = float("inf")
    for _ in range(inner):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def layer_norm_cases(shapes):
    import numpy as np
    import paddle

    from paddlepalm.backbone import fastpath

    for b, length in shapes:
        rng = np.random.default_rng(0)
        x = paddle.to_tensor((rng.standard_normal((b, length, 384)) * 3 + 1).astype("float32"), stop_gradient=False)
        g = paddle.to_tensor(rng.standard_normal((b, length, 384)).astype("float32"))
        stock, fast = paddle.nn.LayerNorm(384), fastpath.LayerNorm(384)
        yield ("layer_norm", "%dx%dx384" % (b, length),
               {"stock": lambda s=stock: s(x).backward(g), "paddlepalm": lambda f=fast: f(x).backward(g)})


def crf_cases(shapes, tags=72):
    import numpy as np
    import paddle

    from paddlepalm.head.crf import LinearChainCRF

    for b, width in shapes:
        rng = np.random.default_rng(0)
        crf = LinearChainCRF(tags)
        for p in (crf.transitions, crf.start, crf.end):
            p.set_value(rng.normal(0, 1, p.shape).astype("float32"))
        lengths = rng.integers(1, width + 1, b)
        lengths[0] = width
        mask = paddle.to_tensor(np.arange(width)[None] < lengths[:, None])
        em = paddle.to_tensor(rng.normal(0, 3, (b, width, tags)).astype("float32"), stop_gradient=False)
        yield ("crf log Z", "%dx%dx%d" % (b, width, tags),
               {"stock": lambda: logsumexp_log_partition(crf, em, mask).mean().backward(),
                "paddlepalm": lambda: crf.log_partition(em, mask).mean().backward()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="OMP/MKL threads (default: paddlepalm's default)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inner", type=int, default=5, help="timings per variant and round (the best counts)")
    p.add_argument("--ln-shapes", default="32x12,32x128", help="BxL of the LayerNorm input")
    p.add_argument("--crf-shapes", default="32x14,32x48", help="BxW (words) of the CRF emissions")
    args = p.parse_args(argv)
    if args.threads:
        os.environ.update(common.thread_env(args.threads))
    sys.path.insert(0, ROOT)
    import paddlepalm as palm

    shapes = lambda text: [tuple(int(v) for v in s.split("x")) for s in text.split(",") if s]
    cases = list(layer_norm_cases(shapes(args.ln_shapes))) + list(crf_cases(shapes(args.crf_shapes)))
    print("machine: %s" % common.machine_description())
    print("threads: %s (%s)" % (palm.thread_facts()["OMP_NUM_THREADS"], palm.thread_facts()["source"]), flush=True)
    rows = []
    for what, shape, variants in cases:
        times = {k: [] for k in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(list(variants)))
            for k in order:
                times[k].append(_best(variants[k], args.inner))
        ratios = [a / b for a, b in zip(times["paddlepalm"], times["stock"])]
        rows.append([what, shape, 1000 * common.median(times["stock"]), 1000 * common.median(times["paddlepalm"]),
                     common.median(ratios)])
    print(common.format_table(["kernel (fwd + bwd)", "shape", "stock ms", "paddlepalm ms", "ratio paddlepalm/stock"],
                              rows))
    print(common.load_note())


if __name__ == "__main__":
    main()
