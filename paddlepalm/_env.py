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
"""
import ctypes
import os
import platform
import sys

PADDLE_FLAG_DEFAULTS = {"FLAGS_use_stride_kernel": "0"}


def _cpu_vendor() -> str:
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
    if _cpu_vendor() != "AuthenticAMD":
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
