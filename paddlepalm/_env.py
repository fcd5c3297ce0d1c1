"""Process-level settings that must happen before PaddlePaddle is imported.

On AMD CPUs, the MKL bundled with Paddle dispatches to a slow generic code path unless
``MKL_DEBUG_CPU_TYPE=5`` is set before the library loads (measured 2.16x on a GEMM loop on an
AMD EPYC box). We set it only when the CPU is AMD and the user has not set it themselves.
"""
import os


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
