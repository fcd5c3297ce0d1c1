"""Write a directory atomically: into a temporary sibling, then rename it into place.

Every saved thing (checkpoints, models, converted encoders, exports, downloads) goes through
:func:`atomic_directory`, so an interrupted write never damages what was there before. Temporary
folders are named ``.tmp-<name>-<pid>-<random>``; :func:`clean_stale_temp_dirs` removes the ones
whose writer process is gone (a kill during a save), and is called before every write.
Permissions follow the process umask like any ``mkdir`` (``mkdtemp`` alone would make them 700).
"""
import errno
import os
import re
import shutil
import tempfile
from typing import Callable, Optional, Type

from paddlepalm.errors import CheckpointError

_TEMP = re.compile(r"^\.tmp-.*-(\d+)-[a-z0-9_]+(\.old)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_dirs(parent: str) -> int:
    """Remove ``.tmp-*`` folders under ``parent`` left by writers that are no longer running."""
    if not os.path.isdir(parent):
        return 0
    removed = 0
    for name in os.listdir(parent):
        m = _TEMP.match(name)
        if m and not _pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed += 1
    return removed


def apply_umask(root: str) -> None:
    """Give ``root`` and everything below it the modes a plain mkdir/open would (umask applied)."""
    mask = _umask()
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)


def atomic_directory(path: str, write: Callable[[str], None],
                     error: Optional[Type[Exception]] = CheckpointError) -> str:
    """Run ``write(tmp_dir)`` and move the result to ``path`` only if it completes.

    An existing ``path`` is replaced; on any error nothing at ``path`` changes and the
    temporary folder is removed. The error is raised as ``error`` naming ``path`` and the cause
    (a full disk is said in words); ``error=None`` re-raises it unchanged.
    """
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    clean_stale_temp_dirs(parent)
    prefix = ".tmp-%s-%d-" % (os.path.basename(os.path.abspath(path)), os.getpid())
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        write(tmp)
        apply_umask(tmp)
        if os.path.isdir(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if error is None or isinstance(e, error):
            raise
        full = " -- no space left on the device" if is_disk_full(e) else ""
        raise error("%s: could not be saved (%s: %s)%s; what was there before is unchanged"
                    % (path, type(e).__name__, e, full)) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def is_disk_full(error: BaseException) -> bool:
    """True when ``error`` (or its cause) is 'no space left on device'."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
