"""paddlepalm: declarative multi-task fine-tuning of pretrained transformer encoders on PaddlePaddle.

Component layers (``reader``, ``backbone``, ``head``, ``optimizer``, ``lr_sched``) plug into a
single-task :class:`Trainer`; several trainers share one encoder in a :class:`MultiHeadTrainer`.
Submodules are imported lazily so that ``from paddlepalm import downloader`` stays light.
"""
from paddlepalm._env import configure_allocator as _configure_allocator
from paddlepalm._env import configure_cpu_math as _configure_cpu_math
from paddlepalm._env import configure_paddle_flags as _configure_paddle_flags

_configure_cpu_math()  # must run before anything imports paddle
_configure_paddle_flags()
_configure_allocator()

import warnings as _warnings  # noqa: E402

# Paddle warns about a missing compiler cache on every import; it only matters for custom C++ ops.
_warnings.filterwarnings("ignore", message="No ccache found")

from paddlepalm.version import __version__  # noqa: E402

_SUBMODULES = {
    "backbone", "tokenizer", "reader", "head", "metrics", "optimizer", "lr_sched",
    "downloader", "config", "cli", "distributed", "report", "utils", "engine", "compat", "checkpoint",
    "artifact", "model", "balancing",
}
_ATTRIBUTES = {
    "Trainer": "paddlepalm.trainer",
    "MultiHeadTrainer": "paddlepalm.multihead_trainer",
    "load": "paddlepalm.model",
    "PalmModel": "paddlepalm.model",
}

__all__ = sorted(_SUBMODULES | set(_ATTRIBUTES) | {"__version__"})


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:
        module = importlib.import_module("paddlepalm." + name)
        globals()[name] = module
        return module
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError("module 'paddlepalm' has no attribute %r" % name)


def __dir__():
    return __all__
