"""Training checkpoints: a model artifact plus everything needed to resume exactly.

``<save_path>/ckpt.step<N>/`` holds the artifact (see :mod:`paddlepalm.model`, so ``palm.load``
works on any checkpoint) plus ``optimizer.pdopt`` (optimizer and LR-scheduler state) and
``trainer_state.json`` (step, sampler RNG, every reader's position, best score). Directories are
written under a temporary name and renamed into place, so an interrupted save never damages the
last good checkpoint; only the newest ``keep_last`` are kept.
"""
import json
import os
import re
import shutil
from typing import List, Optional

from paddlepalm.utils.atomic_dir import atomic_directory  # noqa: F401  (re-exported)

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pdopt"
_CKPT = re.compile(r"^ckpt\.step(\d+)$")


def list_checkpoints(save_path: str) -> List[str]:
    """``ckpt.step<N>`` dirs under ``save_path``, oldest first."""
    if not os.path.isdir(save_path):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(save_path) for m in [_CKPT.match(name)] if m]
    return [os.path.join(save_path, name) for _, name in sorted(found)]


def latest_checkpoint(save_path: str) -> Optional[str]:
    found = list_checkpoints(save_path)
    return found[-1] if found else None


def prune(save_path: str, keep_last: Optional[int]) -> None:
    if not keep_last:
        return
    for path in list_checkpoints(save_path)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def write_json(path: str, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_json_default)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError("not JSON serialisable: %r" % type(value))
