"""Process-level settings that must happen before PaddlePaddle is imported.

On AMD CPUs, the MKL bundled with Paddle dispatches to a slow generic code path unless
``MKL_DEBUG_CPU_TYPE=5`` is set before the library loads (measured 2.16x on a GEMM loop on an
AMD EPYC box). We set it only when the CPU is AMD and the user has not set it themselves.

Two more defaults speed up CPU training (see docs/performance.md; each is skipped when the user
has set it, and the Paddle flag only takes effect if paddle is not imported yet):

* ``FLAGS_use_stride_kernel=0``: with stride kernels on, ``transpose`` returns a strided view that
  the next ``matmul``/``reshape`` (and their gradients) copy with Paddle's generic strided-copy
  kernel, ~4x slower than the transpose kernel; 26% of a MiniLM train step at B=32, L=16.
* glibc ``mallopt``: large blocks (a 30k-vocab embedding gradient is 47 MB) are otherwise
  ``mmap``-ed and unmapped on every allocation, so each step page-faults them in again (17 ms
  vs 2 ms to allocate and zero 47 MB). Keeping them in the heap removes that; opt out with
  ``PADDLEPALM_MALLOPT=0``.

Threads: Paddle sets ``OMP_NUM_THREADS=1`` at import when it is unset, so MKL's GEMMs and Paddle's
OpenMP kernels run on one core whatever the machine has. :func:`configure_threads` puts the
number of usable physical cores (limited by the CPU affinity mask and a cgroup CPU quota) into
``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` before paddle loads, unless the user set either of them
(or Paddle's ``FLAGS_paddle_num_threads``), divided among the processes Paddle's launcher started
on the machine; ``PADDLEPALM_NUM_THREADS=N`` chooses N instead, and
:func:`set_num_threads` changes the count at run time (the ``num_threads`` option of a run).
:func:`thread_facts` says what was decided and what the math libraries really use.
"""
import ctypes
import math
import os
import platform
import sys
from typing import Any, Dict, Optional, Set

PADDLE_FLAG_DEFAULTS = {"FLAGS_use_stride_kernel": "0"}


def cpu_vendor() -> str:
    """The CPU's vendor_id from /proc/cpuinfo (``AuthenticAMD``, ``GenuineIntel``), or ''."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def configure_cpu_math(environ=os.environ) -> bool:
    """Set ``MKL_DEBUG_CPU_TYPE=5`` on AMD CPUs if unset. Returns True when it was set here."""
    if "MKL_DEBUG_CPU_TYPE" in environ:
        return False
    if cpu_vendor() != "AuthenticAMD":
        return False
    environ["MKL_DEBUG_CPU_TYPE"] = "5"
    return True


def configure_paddle_flags(environ=os.environ) -> dict:
    """Put :data:`PADDLE_FLAG_DEFAULTS` in the environment where unset; returns those set here."""
    added = {k: v for k, v in PADDLE_FLAG_DEFAULTS.items() if k not in environ}
    environ.update(added)
    return added


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def configure_allocator(environ=os.environ) -> bool:
    """Keep large freed blocks in glibc's heap instead of unmapping them. True when applied."""
    if environ.get("PADDLEPALM_MALLOPT", "1") == "0" or any(
            k in environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    for threshold in (1 << 30, 1 << 25):  # newer glibc may refuse more than 32 MiB
        if mallopt(_M_MMAP_THRESHOLD, threshold):
            mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
            return True
    return False


# ----------------------------------------------------------------------------- threads
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
PADDLE_THREAD_FLAG = "FLAGS_paddle_num_threads"
NUM_THREADS_ENV = "PADDLEPALM_NUM_THREADS"
DEFAULT_MARK = "_PADDLEPALM_DEFAULT_THREADS"  # the count paddlepalm's default put in OMP/MKL_NUM_THREADS
_THREADS: Dict[str, Any] = {}  # what configure_threads / set_num_threads decided (see thread_facts)


def _cpu_cores(path: str = "/proc/cpuinfo") -> Dict[int, tuple]:
    """Logical CPU number -> (physical id, core id), from /proc/cpuinfo; {} if it cannot be read."""
    cores, cpu, phys = {}, None, "0"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, phys = int(value), "0"
                elif key == "physical id":
                    phys = value
                elif key == "core id" and cpu is not None:
                    cores[cpu] = (phys, value)
    except (OSError, ValueError):
        return {}
    return cores


def _allowed_cpus() -> Set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def physical_cores(allowed: Optional[Set[int]] = None, cpuinfo: str = "/proc/cpuinfo") -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads count once)."""
    allowed = _allowed_cpus() if allowed is None else allowed
    cores = _cpu_cores(cpuinfo)
    if not cores:
        return max(1, len(allowed))
    return max(1, len({cores[c] for c in allowed if c in cores}) or len(allowed))


def _cgroup_quota_v2(root: str, rel: str) -> Optional[float]:
    """The tightest ``cpu.max`` quota from the process's cgroup up to the root, in CPUs."""
    best = None
    path = os.path.join(root, rel.lstrip("/"))
    while True:
        try:
            with open(os.path.join(path, "cpu.max"), encoding="utf-8") as f:
                quota, period = (f.read().split() + ["100000"])[:2]
            if quota != "max" and float(period) > 0:
                cpus = float(quota) / float(period)
                best = cpus if best is None else min(best, cpus)
        except (OSError, ValueError):
            pass
        if os.path.normpath(path) == os.path.normpath(root):
            return best
        path = os.path.dirname(path)


def cgroup_cpu_limit(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> Optional[float]:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``); None if unlimited."""
    try:
        with open(proc_cgroup, encoding="utf-8") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f if line.strip()]
    except OSError:
        return None
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, rel = entry
        if controllers == "":  # cgroup v2 unified hierarchy
            quota = _cgroup_quota_v2(root, rel)
            if quota is not None:
                return quota
        elif "cpu" in controllers.split(","):
            for base in (os.path.join(root, "cpu,cpuacct"), os.path.join(root, "cpu")):
                for path in (os.path.join(base, rel.lstrip("/")), base):
                    try:
                        with open(os.path.join(path, "cpu.cfs_quota_us"), encoding="utf-8") as f:
                            quota = int(f.read())
                        with open(os.path.join(path, "cpu.cfs_period_us"), encoding="utf-8") as f:
                            period = int(f.read())
                    except (OSError, ValueError):
                        continue
                    return quota / period if quota > 0 and period > 0 else None
    return None


def default_num_threads(environ=os.environ) -> int:
    """Physical cores this process may use: affinity mask, then a cgroup CPU quota (rounded down),
    shared among the processes Paddle's launcher started on this machine; at least 1."""
    cores = physical_cores()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, int(math.floor(quota + 1e-9))))
    try:
        local_processes = max(1, int(environ.get("PADDLE_LOCAL_SIZE", "1") or 1))
    except ValueError:
        local_processes = 1
    return max(1, cores // local_processes)


def parse_num_threads(value: Any, source: str) -> int:
    """A positive thread count from ``value``; ValueError naming ``source`` otherwise."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError("%s must be a positive integer (a number of threads), got %r" % (source, value))
    return n


def _launch_environ() -> Dict[str, str]:
    """The environment this process was started with (Linux), {} if unknown."""
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read().split(b"\0")
    except OSError:
        return {}
    pairs = (item.decode("utf-8", "replace").partition("=") for item in raw if b"=" in item)
    return {k: v for k, _, v in pairs}


def _user_thread_setting(environ) -> Optional[str]:
    """The thread variable the user set, if any. Paddle's own ``OMP_NUM_THREADS=1`` (written at
    ``import paddle`` when unset) is not the user's: it is told apart by the launch environment.
    Nor is a default that paddlepalm set in a parent process (``paddlepalm train --nproc N``
    re-runs itself under the launcher): that one is marked by :data:`DEFAULT_MARK`."""
    mark = environ.get(DEFAULT_MARK)
    if mark and all(environ.get(name) == mark for name in THREAD_ENV_VARS):
        return None
    paddle_default = "paddle" in sys.modules and environ is os.environ and environ.get("OMP_NUM_THREADS") == "1"
    launched = _launch_environ() if paddle_default else {}
    for name in THREAD_ENV_VARS + (PADDLE_THREAD_FLAG,):
        if not environ.get(name, "").strip():
            continue
        if name == "OMP_NUM_THREADS" and paddle_default and launched and "OMP_NUM_THREADS" not in launched:
            continue
        return name
    return None


def configure_threads(environ=os.environ) -> Dict[str, Any]:
    """Choose the intra-op thread count before paddle loads; returns the decision.

    ``PADDLEPALM_NUM_THREADS`` wins; else a user's ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/
    ``FLAGS_paddle_num_threads`` is left alone; else :func:`default_num_threads`. The count goes
    into both ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` (where Paddle, MKL and OpenMP read it).
    When paddle is already imported, the environment no longer matters and the count is applied
    with :func:`set_num_threads` instead.
    """
    chosen = environ.get(NUM_THREADS_ENV, "").strip()
    user = _user_thread_setting(environ)
    if chosen:
        n, source = parse_num_threads(chosen, NUM_THREADS_ENV), NUM_THREADS_ENV
    elif user:
        decision = {"num_threads": None, "source": "user (%s=%s)" % (user, environ[user]), "applied": False}
        _THREADS.update(decision)
        return dict(decision)
    else:
        n, source = default_num_threads(environ), "default"
    environ.update({name: str(n) for name in THREAD_ENV_VARS})
    if source == "default":
        environ[DEFAULT_MARK] = str(n)  # child processes recompute their own share
    else:
        environ.pop(DEFAULT_MARK, None)
    decision = {"num_threads": n, "source": source, "applied": True}
    _THREADS.update(decision)
    if "paddle" in sys.modules and environ is os.environ:
        set_num_threads(n, source)
    return dict(decision)


def set_num_threads(num_threads: int, source: str = "num_threads option") -> int:
    """Use ``num_threads`` intra-op threads from now on (MKL and OpenMP; paddle may be imported).

    For a run's ``num_threads`` option: call it before the first training step. Sets the
    environment too, so processes started later (data-parallel workers) inherit the count.
    """
    n = parse_num_threads(num_threads, source)
    os.environ.update({name: str(n) for name in THREAD_ENV_VARS})
    os.environ.pop(DEFAULT_MARK, None)  # a choice, inherited as one
    if "paddle" in sys.modules:
        import paddle

        paddle.base.core.set_num_threads(n)
    _THREADS.update({"num_threads": n, "source": source, "applied": True})
    return n


def process_num_threads(environ=os.environ) -> Optional[int]:
    """The intra-op thread count this process runs with: paddlepalm's choice, else the user's
    ``OMP_NUM_THREADS`` (None when neither says)."""
    if _THREADS.get("num_threads"):
        return int(_THREADS["num_threads"])
    value = environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _library_threads() -> Dict[str, Optional[int]]:
    """Threads MKL and OpenMP (Paddle's bundled libraries) would use now; None where not loaded."""
    out: Dict[str, Optional[int]] = {"mkl_max_threads": None, "omp_max_threads": None}
    paddle = sys.modules.get("paddle")
    if paddle is None or not hasattr(os, "RTLD_NOLOAD"):
        return out
    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    for key, name, fn in (("mkl_max_threads", "libmklml_intel.so", "MKL_Get_Max_Threads"),
                          ("omp_max_threads", "libiomp5.so", "omp_get_max_threads")):
        try:  # RTLD_NOLOAD: only ask a library that is already loaded, never load one
            out[key] = int(getattr(ctypes.CDLL(os.path.join(libs, name), mode=os.RTLD_NOLOAD), fn)())
        except (OSError, AttributeError):
            pass
    return out


def thread_facts() -> Dict[str, Any]:
    """The process's CPU thread settings, for the run's log and ``results.json``.

    ``num_threads``/``source``: what paddlepalm chose and why (``default``, ``PADDLEPALM_NUM_THREADS``,
    ``num_threads option``, or ``user (VAR=value)`` when left alone); the environment variables as
    they are now; the machine's limits; and the threads MKL/OpenMP report (None until loaded).
    """
    facts: Dict[str, Any] = {"num_threads": _THREADS.get("num_threads"), "source": _THREADS.get("source", "unset")}
    facts.update({name: os.environ.get(name) for name in THREAD_ENV_VARS})
    facts.update({"physical_cores": physical_cores(), "logical_cpus": os.cpu_count(),
                  "affinity_cpus": len(_allowed_cpus()), "cgroup_cpu_limit": cgroup_cpu_limit(),
                  "cpu_vendor": cpu_vendor(), "MKL_DEBUG_CPU_TYPE": os.environ.get("MKL_DEBUG_CPU_TYPE")})
    facts.update(_library_threads())
    return facts


def configure_run_threads(num_threads: Optional[int] = None, log=None) -> Dict[str, Any]:
    """What a run calls once before its first step: apply ``num_threads`` (the run's option; None
    keeps the process default), log one line, and return :func:`thread_facts` for ``results.json``."""
    if num_threads is not None:
        set_num_threads(num_threads, "num_threads option")
    facts = thread_facts()
    if log is None:
        import logging

        log = logging.getLogger("paddlepalm")
    log.info("threads: %s (%s); physical cores %s, affinity %s CPUs, cgroup limit %s; MKL %s, OpenMP %s",
             facts["num_threads"] or facts["OMP_NUM_THREADS"] or facts["MKL_NUM_THREADS"], facts["source"],
             facts["physical_cores"], facts["affinity_cpus"], facts["cgroup_cpu_limit"] or "none",
             facts["mkl_max_threads"] or "not loaded", facts["omp_max_threads"] or "not loaded")
    return facts
