"""Installing one catalog entry into ``<path>/<name>/``: fetch, unpack, convert, move, mark.

Files are fetched into ``<path>/.<name>.download/`` (kept after a network failure so the next
call resumes), unpacked and converted in a temporary directory next to the target, and moved
into place with :func:`os.replace`, so ``<path>/<name>/`` either does not exist or is complete.
The marker file ``.paddlepalm_download.json`` inside records the source and sha256; an item
whose marker matches the catalog entry is not downloaded again.

Installs of the same item into the same ``path`` are serialised across processes by a file
lock, ``<path>/.<name>.lock`` (:mod:`filelock`): a second process waits, then finds the item
installed and reuses it. The empty lock file stays; it is harmless and reused.
"""
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

import filelock
import requests

from paddlepalm.downloader.catalog import CONVERTED_FORMATS, CatalogEntry
from paddlepalm.downloader.errors import (DownloadError, HTTPStatusError, LockTimeoutError,
                                          NetworkError)
from paddlepalm.downloader.extract import ExtractLimits, content_root, is_archive, safe_extract
from paddlepalm.downloader.http import FetchOptions, fetch, make_session
from paddlepalm.version import __version__

logger = logging.getLogger(__name__)

MARKER = ".paddlepalm_download.json"
HF_ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

Digest = Union[str, Dict[str, str]]


LOCK_SUFFIX = ".lock"
DEFAULT_LOCK_TIMEOUT = 6 * 3600.0


def lock_path(path: str, name: str) -> str:
    """The lock file serialising installs of ``name`` into ``path``."""
    return os.path.join(os.path.abspath(path), "." + name + LOCK_SUFFIX)


def install(entry: CatalogEntry, path: str, force: bool = False,
            options: Optional[FetchOptions] = None,
            session: Optional[requests.Session] = None,
            limits: Optional[ExtractLimits] = None,
            lock_timeout: Optional[float] = DEFAULT_LOCK_TIMEOUT) -> str:
    """Make ``<path>/<entry.name>`` hold ``entry`` in paddlepalm's layout; return its path.

    Another process installing the same item into the same ``path`` is waited for (at most
    ``lock_timeout`` seconds, ``None``: forever); its verified install is then reused. Every
    failure is a :class:`DownloadError` (or subclass).
    """
    path = os.path.abspath(path)
    target = os.path.join(path, entry.name)
    if os.path.lexists(target) and not force:
        return _existing(entry, target)
    try:
        os.makedirs(path, exist_ok=True)
        lock = filelock.FileLock(lock_path(path, entry.name),
                                 timeout=-1 if lock_timeout is None else lock_timeout)
        with lock:
            if os.path.lexists(target) and not force:  # installed while we waited
                return _existing(entry, target)
            return _install_locked(entry, path, target, options, session, limits)
    except filelock.Timeout:
        raise LockTimeoutError("another process has been installing %r into %s for more than %gs "
                               "(lock file %s); wait for it, or remove the lock file if no "
                               "process is using it" % (entry.name, path, lock_timeout,
                                                        lock_path(path, entry.name))) from None
    except DownloadError:
        raise
    except OSError as e:
        raise DownloadError("installing %r into %s failed: %s" % (entry.name, target, e)) from e


def _install_locked(entry: CatalogEntry, path: str, target: str, options: Optional[FetchOptions],
                    session: Optional[requests.Session], limits: Optional[ExtractLimits]) -> str:
    staging = os.path.join(path, ".%s.download" % entry.name)
    work = tempfile.mkdtemp(prefix=".%s." % entry.name, suffix=".tmp", dir=path)
    keep_staging = False
    try:
        session = session or make_session()
        content, digest = _fetch_content(entry, staging, work, options, session, limits)
        final = _convert(entry, content, work)
        write_marker(final, entry, digest)
        _move_into_place(final, target)
    except NetworkError:
        keep_staging = True
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not keep_staging or not _has_files(staging):
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed %s into %s", entry.name, target)
    return target


def read_marker(directory: str) -> Optional[Dict[str, Any]]:
    """The marker written by :func:`install`, or None when absent or unreadable."""
    try:
        with open(os.path.join(directory, MARKER), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(directory: str, entry: CatalogEntry, digest: Digest) -> None:
    """Record where ``directory``'s content came from and its sha256."""
    data = {"name": entry.name, "item": entry.item, "source": entry.source,
            "format": entry.format, "sha256": digest, "installed_by": "paddlepalm " + __version__}
    with open(os.path.join(directory, MARKER), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)


def marker_matches(marker: Optional[Dict[str, Any]], entry: CatalogEntry) -> bool:
    """Whether an installed item (its marker) is what ``entry`` describes."""
    if not marker or marker.get("source") != entry.source:
        return False
    recorded = marker.get("sha256")
    if entry.hf_repo:
        recorded = recorded if isinstance(recorded, dict) else {}
        return all(recorded.get(f.name) == f.sha256 for f in entry.files if f.sha256)
    return entry.sha256 is None or recorded == entry.sha256


def _existing(entry: CatalogEntry, target: str) -> str:
    marker = read_marker(target)
    if marker_matches(marker, entry):
        logger.info("%s is already present in %s; not downloading it again", entry.name, target)
        return target
    if marker:
        raise DownloadError("%s holds a different download (%s, sha256 %s) than the catalog "
                            "entry %r (%s); pass force=True to replace it"
                            % (target, marker.get("source"), marker.get("sha256"), entry.name,
                               entry.source))
    raise DownloadError("%s already exists and was not installed by the downloader (no %s); "
                        "remove it or pass force=True to replace it" % (target, MARKER))


def _fetch_content(entry: CatalogEntry, staging: str, work: str,
                   options: Optional[FetchOptions], session: requests.Session,
                   limits: Optional[ExtractLimits] = None) -> Tuple[str, Digest]:
    """Download the entry and return the directory holding its files plus their sha256."""
    os.makedirs(staging, exist_ok=True)
    if entry.hf_repo:
        digests = _fetch_hf_files(entry, staging, options, session)
        content = os.path.join(work, "content")
        os.replace(staging, content)
        return content, digests
    filename, digest = _fetch_from_mirrors(entry, staging, options, session)
    content = os.path.join(work, "content")
    os.makedirs(content)
    if is_archive(filename):
        safe_extract(os.path.join(staging, filename), content, limits)
        return content_root(content), digest
    os.replace(os.path.join(staging, filename), os.path.join(content, filename))
    return content, digest


def _fetch_from_mirrors(entry: CatalogEntry, staging: str, options: Optional[FetchOptions],
                        session: requests.Session) -> Tuple[str, str]:
    errors = []
    for url in entry.urls:
        filename = _url_filename(url, entry.name)
        try:
            return filename, fetch(url, os.path.join(staging, filename), entry.sha256, options,
                                   session)
        except (NetworkError, HTTPStatusError) as e:
            errors.append(e)
            if url != entry.urls[-1]:
                logger.warning("%s; trying the next mirror", e)
                _remove_partials(staging)
    if len(errors) == 1:
        raise errors[0]
    message = "every mirror of %r failed:\n  %s" % (entry.name, "\n  ".join(map(str, errors)))
    if all(isinstance(e, HTTPStatusError) for e in errors):
        raise HTTPStatusError(message, errors[-1].status)
    raise NetworkError(message)


def _fetch_hf_files(entry: CatalogEntry, staging: str, options: Optional[FetchOptions],
                    session: requests.Session) -> Dict[str, str]:
    endpoint = os.environ.get(HF_ENDPOINT_ENV, DEFAULT_HF_ENDPOINT).rstrip("/")
    digests = {}
    for remote in entry.files:
        url = "%s/%s/resolve/%s/%s" % (endpoint, entry.hf_repo, entry.revision, remote.name)
        dest = os.path.join(staging, *remote.name.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            digests[remote.name] = fetch(url, dest, remote.sha256, options, session)
        except HTTPStatusError as e:
            if remote.optional and e.status == 404:
                logger.info("optional file %s is not in %s; skipped", remote.name,
                            entry.hf_repo)
                continue
            raise
    return digests


def _convert(entry: CatalogEntry, content: str, work: str) -> str:
    """Convert ``content`` to paddlepalm's layout when the entry's format needs it."""
    if entry.format not in CONVERTED_FORMATS:
        return content
    try:  # imported lazily: it pulls in paddle, which the downloader must not need to import
        from paddlepalm.backbone import convert_checkpoint, detect_layout
        from paddlepalm.errors import CheckpointError
    except ImportError as e:
        raise DownloadError("converting the %s checkpoint %r needs paddlepalm's backbone "
                            "and PaddlePaddle (pip install 'paddlepalm[cpu]'): %s"
                            % (entry.format, entry.name, e)) from e
    try:
        layout = detect_layout(content)
        if layout != entry.format:
            logger.warning("%s: the catalog says format %r but the files look like %r; "
                           "converting them as %r", entry.name, entry.format, layout, layout)
        if layout == "paddlepalm":
            return content
        converted = os.path.join(work, "converted")
        convert_checkpoint(content, converted)
        return converted
    except CheckpointError as e:
        raise DownloadError("downloaded %r but could not convert it from the %s layout: %s"
                            % (entry.name, entry.format, e)) from e


def _move_into_place(src: str, target: str) -> None:
    """Atomically put ``src`` at ``target``, replacing a previous install (force=True)."""
    if not os.path.lexists(target):
        try:
            os.replace(src, target)
            return
        except OSError:
            if not os.path.lexists(target):
                raise
            # someone else installed it meanwhile: fall through and replace theirs
    trash = tempfile.mkdtemp(prefix=".%s." % os.path.basename(target), suffix=".old",
                             dir=os.path.dirname(target))
    try:
        os.replace(target, os.path.join(trash, "old"))
        os.replace(src, target)
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _url_filename(url: str, fallback: str) -> str:
    name = os.path.basename(unquote(urlsplit(url).path))
    return name if name and name not in (".", "..") else fallback


def _remove_partials(directory: str) -> None:
    for name in os.listdir(directory):
        if name.endswith((".part", ".part.json")):
            os.remove(os.path.join(directory, name))


def _has_files(directory: str) -> bool:
    return os.path.isdir(directory) and any(os.scandir(directory))
