#!/usr/bin/env python
"""Where the flagship's train step spends its time: phases and a ``paddle.profiler`` op table.

The flagship is ``examples/multi-task/run.py``: all-MiniLM-L6-v2, SNIPS intent (Classify head)
and slot filling (SequenceLabel head with a linear-chain CRF) over one encoder, batch 32,
max_len 48, AdamW with per-head learning rates, tasks sampled by mix ratio. This script builds
exactly that model through the example's own ``build_trainers`` and drives the steps the way the
engine's ``FitLoop.step`` does (sample a task, batch -> tensors, encoder, head, backward, optimizer
step), with each phase timed on its own:

  data        sampler + next batch from the reader + numpy -> tensors
  encoder     the shared encoder's forward
  head:TASK   the task head's forward and loss (slot: emissions + CRF log-likelihood)
  backward    ``loss.backward()`` (encoder and heads together)
  optimizer   global-norm clipping + AdamW + clear_grad + LR schedule
  sync        reading the loss on the host (the trainer does it once per ``print_steps``)

Then it profiles the same steps with ``paddle.profiler`` (CPU) and prints the operators by self
time (time inside an operator minus the operators it calls), each under the phase it ran in.

  python benchmarks/profile_step.py                      # threads: paddlepalm's default
  python benchmarks/profile_step.py --threads 1 --steps 10
  python benchmarks/profile_step.py --shape 32x128       # fixed-shape batches instead of SNIPS
"""
import argparse
import collections
import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import common  # noqa: E402  (imports neither paddle nor torch)

PHASES = ("data", "encoder", "head:intent", "head:slot", "backward", "optimizer", "sync")


def _load_example():
    """examples/multi-task/run.py as a module (its folder name has a dash)."""
    path = os.path.join(ROOT, "examples", "multi-task", "run.py")
    spec = importlib.util.spec_from_file_location("_flagship", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_flagship(args):
    """The flagship's engine with its training plan and optimizer (nothing trained yet)."""
    flagship = _load_example()
    import paddlepalm as palm
    from paddlepalm.datasets import find_snips, prepare_snips, pretrained_dir
    from paddlepalm.utils.script import optimizer_from_args
    from paddlepalm.utils.seed import seed_everything

    opts = flagship.parse_args(["--limit", str(args.limit)] if args.limit else [])
    snips = find_snips(args.data_dir, os.path.join(ROOT, "examples", "multi-task", "data"))
    data = prepare_snips(snips, tempfile.mkdtemp(prefix="profile_step_"), seed=opts.split_seed, limit=args.limit)
    vocab = pretrained_dir(None)
    seed_everything(opts.seed)
    backbone = palm.backbone.BERT.from_pretrained(vocab)
    trainers, _ = flagship.build_trainers(opts, data, vocab, backbone.config.hidden_size)
    engine = palm.MultiHeadTrainer(trainers, backbone=backbone, seed=opts.seed)
    engine.build_forward()
    engine.build_backward(optimizer_from_args(opts))
    engine.fit_readers_with_mixratio({t.name: t.reader for t in trainers}, trainers[0].name, opts.epochs)
    engine.loop.configure(engine.args)
    engine.loop.build_optimizer()
    return engine, opts


def fixed_batches(engine, shape):
    """Endless batches of one fixed shape ``(B, L)`` per task (random tokens, all positions real)."""
    import numpy as np

    b, length = shape
    rng = np.random.default_rng(0)
    out = {}
    for t in engine.tasks:
        batch = {"input_ids": rng.integers(1000, 20000, (b, length)).astype(np.int64),
                 "token_type_ids": np.zeros((b, length), np.int64),
                 "attention_mask": np.ones((b, length), np.int64)}
        if t.name == "intent":
            batch["label"] = rng.integers(0, t.head.num_classes, (b,)).astype(np.int64)
        else:  # one word per token
            batch["word_starts"] = np.tile(np.arange(length), (b, 1)).astype(np.int64)
            batch["num_words"] = np.full((b,), length, np.int64)
            batch["word_labels"] = rng.integers(0, t.head.num_classes, (b, length)).astype(np.int64)
        out[t.name] = batch
    return out


class Stepper:
    """One train step of the engine's ``FitLoop``, phase by phase, in the order of
    ``FitLoop.step`` (sampled mode: one task a step), with a context manager around every phase."""

    def __init__(self, engine, fixed=None):
        import paddle

        from paddlepalm.engine.loop import STEP_SEED_MULTIPLIER
        from paddlepalm.forward import encoder_inputs, to_tensors

        self.paddle, self.loop, self.fixed = paddle, engine.loop, fixed
        self.encoder_inputs, self.to_tensors = encoder_inputs, to_tensors
        self.seed_base = engine.seed * STEP_SEED_MULTIPLIER
        self.step_index = 0

    def step(self, mark):
        """``mark(name)`` returns a context manager put around each phase."""
        loop, paddle = self.loop, self.paddle
        paddle.seed(self.seed_base + self.step_index)
        self.step_index += 1
        with mark("data"):
            unit = loop.sampler.next_tasks()[0]
            t = loop.tasks[loop.units[unit][0]]
            batch = self.fixed[t.name] if self.fixed else next(loop.iterators()[unit])
            tensors = self.to_tensors(batch)
        loop.network.train_task(t)
        backbone = loop.network.backbone
        with mark("encoder"):
            enc = backbone(**self.encoder_inputs(tensors, backbone))
        with mark("head:" + t.name):
            loss = t.head(enc, tensors)["loss"]
        with mark("backward"):
            loop.backward(loss * (t.loss_weight / loop.accumulate_steps))
        with mark("optimizer"):
            loop.optimizer_step()
        with mark("sync"):
            float(loss)
        return t.name, int(batch["input_ids"].size)


class PhaseTimer:
    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def __call__(self, name):
        timer = self

        class _Range:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] += time.perf_counter() - self.t

        return _Range()


# ----------------------------------------------------------------------------- the op table
_GRAD_NODE = re.compile(r"^(?:Global_|Local_)?(\w+?)GradNode(?:Compat)?$")


def op_name(raw: str) -> str:
    """``'matmul dygraph[1.2 ms]'`` -> ``'matmul'``; ``'Global_MatmulGradNode'`` -> ``'matmul_grad'``."""
    name = raw.split("[", 1)[0].strip()
    name = re.sub(r"\s+(dygraph|pybind_imperative_func)$", "", name)
    m = _GRAD_NODE.match(name)
    if m:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower() + "_grad"
    return name


def aggregate_ops(events):
    """Self time per (phase, operator) from chrome-trace events of ``paddle.profiler``.

    Operator events nest (a grad node calls kernels, a PyLayer's backward calls matmuls): each
    one's self time is its duration minus that of the operators directly inside it. The phase is
    the enclosing ``RecordEvent`` range of this script.
    """
    xs = [e for e in events if e.get("ph") == "X" and "dur" in e]
    phases = sorted(((float(e["ts"]), float(e["ts"]) + float(e["dur"]), e["name"].split("[", 1)[0])
                     for e in xs if e.get("cat") == "PythonUserDefined"
                     and e["name"].split("[", 1)[0] in PHASES))
    ops = sorted((e for e in xs if e.get("cat") == "Operator"), key=lambda e: (float(e["ts"]), -float(e["dur"])))
    table = collections.defaultdict(lambda: [0, 0.0])  # (phase, op) -> [calls, self us]
    stack = []  # (end, key, child time)
    pi = 0

    def phase_at(ts):
        nonlocal pi
        while pi < len(phases) and phases[pi][1] < ts:
            pi += 1
        if pi < len(phases) and phases[pi][0] <= ts <= phases[pi][1]:
            return phases[pi][2]
        return "other"

    def close(upto):
        while stack and stack[-1][0] <= upto:
            end, key, dur, child = stack.pop()
            table[key][1] += dur - child
            if stack:
                stack[-1][3] += dur

    for e in ops:
        ts, dur = float(e["ts"]), float(e["dur"])
        close(ts)
        key = (phase_at(ts), op_name(e["name"]))
        table[key][0] += 1
        stack.append([ts + dur, key, dur, 0.0])
    close(float("inf"))
    return table


def profile_steps(stepper, steps, trace_dir):
    import paddle.profiler as profiler

    def mark(name):
        return profiler.RecordEvent(name)

    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda _: None)  # no ./profiler_log
    prof.start()
    for _ in range(steps):
        stepper.step(mark)
        prof.step()
    with contextlib.redirect_stdout(io.StringIO()):  # paddle prints its own timing summary at stop
        prof.stop()
    path = os.path.join(trace_dir, "trace.json")
    prof.export(path, format="json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None,
                   help="OMP/MKL threads (default: paddlepalm's default, physical cores usable by this process)")
    p.add_argument("--steps", type=int, default=20, help="timed steps, then as many profiled steps")
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--limit", type=int, default=3000, help="SNIPS utterances per split to tokenize (0: all)")
    p.add_argument("--data-dir", default=None, help="SNIPS folder (default: the example's search)")
    p.add_argument("--shape", default=None, help="BxL: fixed-shape batches instead of SNIPS batches")
    p.add_argument("--top", type=int, default=25, help="operators shown")
    p.add_argument("--json", default=None, help="also write phases and the op table here")
    args = p.parse_args(argv)
    if args.threads:
        os.environ.update(common.thread_env(args.threads))  # before paddle loads
    sys.path.insert(0, ROOT)
    import paddlepalm as palm

    print("machine: %s" % common.machine_description(), flush=True)
    engine, _ = build_flagship(args)
    shape = tuple(int(x) for x in args.shape.lower().split("x")) if args.shape else None
    stepper = Stepper(engine, fixed_batches(engine, shape) if shape else None)
    facts = palm.thread_facts()
    print("threads: %s (%s); MKL %s, OpenMP %s" % (facts["OMP_NUM_THREADS"], facts["source"],
                                                  facts["mkl_max_threads"], facts["omp_max_threads"]))
    timer = PhaseTimer()
    for _ in range(args.warmup_steps):
        stepper.step(PhaseTimer())
    tasks, tokens = collections.Counter(), 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        task, n = stepper.step(timer)
        tasks[task] += 1
        tokens += n
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    facts = palm.thread_facts()
    per_step = 1000 * wall / args.steps
    print("\n%d steps (%s), %.1f padded tokens per step: %.1f ms a step, CPU/wall %.2f, MKL threads %s"
          % (args.steps, ", ".join("%s %d" % kv for kv in sorted(tasks.items())), tokens / args.steps, per_step,
             cpu / wall, facts["mkl_max_threads"]))
    rows = [[name, 1000 * timer.seconds[name] / args.steps, 100 * timer.seconds[name] / wall]
            for name in PHASES if name in timer.seconds]
    rest = wall - sum(timer.seconds.values())
    rows.append(["(between phases)", 1000 * rest / args.steps, 100 * rest / wall])
    print(common.format_table(["phase", "ms / step", "% of step"], rows))

    with tempfile.TemporaryDirectory() as tmp:
        events = profile_steps(stepper, args.steps, tmp)
    table = aggregate_ops(events)
    total_us = sum(v[1] for v in table.values())
    step_us = sum(float(e["dur"]) for e in events if e.get("cat") == "ProfileStep") or total_us
    ranked = sorted(table.items(), key=lambda kv: -kv[1][1])
    print("\nprofiled %d more steps: operators' self time is %.0f%% of the profiled step time (the rest is "
          "Python and framework overhead between operators)" % (args.steps, 100 * total_us / step_us))
    op_rows = [[phase, op, calls / args.steps, us / 1000 / args.steps, 100 * us / step_us]
               for (phase, op), (calls, us) in ranked[:args.top]]
    print(common.format_table(["phase", "operator", "calls / step", "self ms / step", "% of step"], op_rows))
    by_op = collections.defaultdict(float)
    for (_, op), (_, us) in table.items():
        by_op[op] += us
    by_phase = collections.defaultdict(float)
    for (phase, _), (_, us) in table.items():
        by_phase[phase] += us
    print("\noperator self time by phase (ms / step): " + ", ".join(
        "%s %.1f" % (ph, us / 1000 / args.steps) for ph, us in sorted(by_phase.items(), key=lambda kv: -kv[1])))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": common.command_line(), "machine": common.machine_description(), "threads": facts,
                       "steps": args.steps, "ms_per_step": per_step, "cpu_over_wall": cpu / wall,
                       "phases_ms_per_step": {r[0]: r[1] for r in rows},
                       "ops": [{"phase": ph, "op": op, "calls": c, "self_us": us} for (ph, op), (c, us) in ranked]},
                      f, indent=1)


if __name__ == "__main__":
    main()
