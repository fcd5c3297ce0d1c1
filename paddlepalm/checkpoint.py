"""Moved to :mod:`paddlepalm.engine.checkpoints` (training checkpoints) and
:mod:`paddlepalm.utils.atomic_dir`; this name stays importable for existing scripts."""
from paddlepalm.engine.checkpoints import *  # noqa: F401,F403
from paddlepalm.engine.checkpoints import (OPTIMIZER_STATE, TRAINER_STATE, latest_checkpoint,  # noqa: F401
                                           list_checkpoints, prune, read_json, resolve_model_dir, write_json)
from paddlepalm.utils.atomic_dir import atomic_directory  # noqa: F401
