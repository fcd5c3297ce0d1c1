"""Reading and writing the files of checkpoints and saved models; damage names the file."""
import json
import os

from paddlepalm.errors import CheckpointError


def write_json(path: str, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=_json_default)


def read_json(path: str):
    """Read a JSON file of a checkpoint; a damaged one raises ``CheckpointError`` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError("%s: damaged or truncated JSON (%s)" % (path, e)) from e


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError("not JSON serialisable: %r" % type(value))


def load_paddle_file(path: str):
    """``paddle.load`` a checkpoint file; a missing or damaged one raises ``CheckpointError``."""
    import paddle

    if not os.path.isfile(path):
        raise CheckpointError("%s: missing" % path)
    try:
        return paddle.load(path)
    except Exception as e:  # Paddle raises several types for a truncated file
        raise CheckpointError("%s: damaged or truncated (%s: %s)" % (path, type(e).__name__, e)) from e
