"""Where a dataset lives: an explicit folder, ``$PADDLEPALM_DATA/<name>``, a local folder, or the
project's shared-data folder ``../shared/datasets/<name>`` beside the source checkout.

>>> from paddlepalm.datasets.locate import find_data, has_files
>>> find_data("snips", None, "examples/multi-task/data", has_files("train_*_full.json"), "...")
'/data/snips'
"""
import glob
import os
from typing import Callable, List, Optional

from paddlepalm.utils.paths import PROJECT_ROOT

DATA_ENV = "PADDLEPALM_DATA"

FolderCheck = Callable[[str], bool]


class DataNotFound(SystemExit):
    """A dataset is nowhere to be found; the message lists where it was looked for and how to get it.

    It is a ``SystemExit`` so that a command-line script ends with the message and no traceback;
    library code that wants to recover catches ``DataNotFound``.
    """


def shared_data_dir(name: str) -> str:
    """``<project>/../shared/datasets/<name>``: this project's shared-data convention."""
    return os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "datasets", name)


def candidate_dirs(name: str, local_dir: Optional[str]) -> List[str]:
    """The folders :func:`find_data` tries without ``--data-dir``, in order."""
    env = os.environ.get(DATA_ENV)
    candidates = [os.path.join(env, name)] if env else []
    if local_dir:
        candidates.append(local_dir)
    candidates.append(shared_data_dir(name))
    return candidates


def find_data(name: str, data_dir: Optional[str], local_dir: Optional[str], check: FolderCheck,
              how_to_get: str) -> str:
    """The first folder that holds dataset ``name``.

    Looks at ``data_dir`` (e.g. a ``--data-dir`` option; used as given, never skipped), then
    ``$PADDLEPALM_DATA/<name>``, then ``local_dir`` (e.g. an example's ``data/`` folder), and last
    at :func:`shared_data_dir`. ``check(folder)`` says whether a folder has the files (see
    :func:`has_files`); ``how_to_get`` ends the error message. Raises :class:`DataNotFound`.
    """
    if data_dir:
        if check(data_dir):
            return data_dir
        raise DataNotFound("error: --data-dir %s does not hold the %s data.\n%s" % (data_dir, name, how_to_get))
    tried = candidate_dirs(name, local_dir)
    for candidate in tried:
        if os.path.isdir(candidate) and check(candidate):
            return candidate
    raise DataNotFound("error: the %s data was not found (looked in: %s).\n%s"
                       % (name, ", ".join(tried), how_to_get))


def has_files(*patterns: str) -> FolderCheck:
    """A ``check`` for :func:`find_data`: every glob pattern matches at least one file in the folder."""
    return lambda folder: all(glob.glob(os.path.join(folder, p)) for p in patterns)
