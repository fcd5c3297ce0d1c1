"""Training checkpoints: a model artifact plus everything needed to resume exactly.

``<save_path>/ckpt.step<N>/`` holds the artifact (see :mod:`paddlepalm.model`, so ``palm.load``
works on any checkpoint) plus ``optimizer.pdopt`` (optimizer state under structured parameter
names) and ``trainer_state.json`` (train state, sampler RNG, every reader's position, LR
schedule, callbacks' state). Directories are written atomically
(:func:`paddlepalm.utils.atomic_dir.atomic_directory`); only the newest ``keep_last`` are kept.
"""
import os
import re
import shutil
from typing import Any, Dict, List, Optional

from paddlepalm.artifact import MODEL_FILE
from paddlepalm.errors import CheckpointError
from paddlepalm.utils.checkpoint_io import load_paddle_file, read_json, write_json  # noqa: F401

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pdopt"
_CKPT = re.compile(r"^ckpt\.step(\d+)$")


def checkpoint_name(step: int) -> str:
    return "ckpt.step%d" % step


def list_checkpoints(save_path: str) -> List[str]:
    """``ckpt.step<N>`` dirs under ``save_path``, oldest first."""
    if not save_path or not os.path.isdir(save_path):
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


def resolve_model_dir(path: str) -> str:
    """The model folder ``path`` means: itself, or a training output's ``best/``, else its newest
    ``ckpt.step<N>/``. ``palm.load`` and every ``--ckpt`` option use this one rule."""
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return path
    best = os.path.join(path, "best")
    if os.path.isfile(os.path.join(best, MODEL_FILE)):
        return best
    latest = latest_checkpoint(path)
    if latest:
        return latest
    if not os.path.isdir(path):
        raise CheckpointError("%s: no such folder" % path)
    raise CheckpointError("%s: not a paddlepalm model or training output folder (no %s, best/ or ckpt.step*)"
                          % (path, MODEL_FILE))


# ----------------------------------------------------------------------------- optimizer state
def _renames(named_parameters) -> List[tuple]:
    """Paddle's automatic parameter names -> our structured names (stable across processes)."""
    return [(p.name + "_", n + "_") for n, p in named_parameters]


def optimizer_state(optimizer, named_parameters) -> Dict[str, Any]:
    """``optimizer.state_dict()`` with keys under structured parameter names (``param:...``)."""
    renames = sorted(_renames(named_parameters), key=lambda r: -len(r[0]))
    out = {}
    for key, value in optimizer.state_dict().items():
        for auto, structured in renames:
            if key.startswith(auto):
                key = "param:" + structured + key[len(auto):]
                break
        out[key] = value
    return out


def set_optimizer_state(optimizer, named_parameters, state: Dict[str, Any], source: str = "") -> None:
    renames = sorted(((s, a) for a, s in _renames(named_parameters)), key=lambda r: -len(r[0]))
    out = {}
    for key, value in state.items():
        if key.startswith("param:"):
            key = key[len("param:"):]
            for structured, auto in renames:
                if key.startswith(structured):
                    key = auto + key[len(structured):]
                    break
            else:
                raise CheckpointError("%s: optimizer state for unknown parameter %r" % (source, key))
        out[key] = value
    optimizer.set_state_dict(out)
