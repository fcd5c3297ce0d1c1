"""Download pretrained checkpoints from the catalog into paddlepalm's checkpoint layout.

>>> from paddlepalm import downloader
>>> downloader.ls('pretrain')                                     # prints a table, returns entries
>>> downloader.download('pretrain', 'BERT-en-uncased-base', './pretrain_models')
'.../pretrain_models/BERT-en-uncased-base'

The signatures ``ls(item='all', scope='all')`` and ``download(item, scope='all', path='.')`` are
those of PALM 2.x. This package never imports paddle itself; converting a downloaded
PaddleNLP / Hugging Face / PALM 1.x checkpoint imports it when needed.
See docs/downloader.md.
"""
import sys
from typing import IO, List, Optional, Sequence, Tuple, Union

import requests

from paddlepalm.downloader.catalog import (ENV_VAR, Catalog, CatalogEntry, CatalogSource,
                                           RemoteFile, load_catalog)
from paddlepalm.downloader.errors import (CatalogError, ChecksumError, DeadlineError,
                                          DownloadError, HTTPStatusError, LockTimeoutError,
                                          NetworkError, UnknownItemError, UnsafeArchiveError)
from paddlepalm.downloader.extract import ExtractLimits
from paddlepalm.downloader.http import FetchOptions, make_session
from paddlepalm.downloader.install import DEFAULT_LOCK_TIMEOUT, MARKER, install, read_marker
from paddlepalm.downloader.listing import format_listing

__all__ = [
    "ls", "download", "load_catalog", "Catalog", "CatalogEntry", "RemoteFile", "FetchOptions",
    "ExtractLimits", "DownloadError", "NetworkError", "DeadlineError", "HTTPStatusError",
    "ChecksumError", "UnsafeArchiveError", "LockTimeoutError", "CatalogError", "UnknownItemError", "ENV_VAR", "MARKER", "read_marker",
]

CatalogArg = Union[None, CatalogSource, Sequence[CatalogSource], Catalog]
Scope = Union[str, Sequence[str]]


def ls(item: str = "all", scope: Scope = "all", catalog: CatalogArg = None,
       file: Optional[IO[str]] = None, verbose: bool = True) -> List[CatalogEntry]:
    """Print the catalog as a table and return its entries.

    ``item`` is an item type (``'pretrain'``) or ``'all'``; ``scope`` is ``'all'``, one name or a
    list of names. ``catalog`` adds/overrides entries (a YAML path, a mapping or a list of them).
    Output goes to ``file`` (default stdout) unless ``verbose`` is False.
    """
    selected = _select_all(_catalog(catalog), item, scope)
    if verbose:
        for item_type in dict.fromkeys(e.item for e in selected):
            entries = [e for e in selected if e.item == item_type]
            print(format_listing(item_type, entries) + "\n", file=file or sys.stdout)
    return selected


def download(item: str, scope: Scope = "all", path: str = ".", catalog: CatalogArg = None,
             force: bool = False, retries: int = 4, backoff: float = 1.0,
             timeout: Union[float, Tuple[float, float]] = (10.0, 60.0), progress: bool = True,
             session: Optional[requests.Session] = None,
             deadline: Optional[float] = FetchOptions.deadline,
             limits: Optional[ExtractLimits] = None,
             lock_timeout: Optional[float] = DEFAULT_LOCK_TIMEOUT) -> Union[str, List[str]]:
    """Fetch, verify, unpack and convert items into ``<path>/<name>/``; return the path(s).

    ``scope`` is one name (returns its directory), ``'all'`` or a list of names (returns a list).
    Items already installed from the same source and checksum are not fetched again unless
    ``force``. ``retries`` extra attempts wait ``backoff * 2**k`` seconds; ``timeout`` is seconds
    (or ``(connect, read)``) per connect and per read; ``deadline`` bounds each file's whole
    fetch (``None``: no limit). ``limits`` caps what an archive may unpack to. A second process
    installing the same item into ``path`` waits up to ``lock_timeout`` seconds for the first.
    Raises :class:`DownloadError` (or a subclass) on failure.
    """
    cat = _catalog(catalog)
    options = FetchOptions(retries=retries, backoff=backoff, timeout=timeout, progress=progress,
                           deadline=deadline)
    session = session or make_session()
    entries = _select_all(cat, item, scope)
    paths = [install(e, path, force=force, options=options, session=session, limits=limits,
                     lock_timeout=lock_timeout) for e in entries]
    single = isinstance(scope, str) and scope != "all"
    return paths[0] if single and len(paths) == 1 else paths


def _catalog(catalog: CatalogArg) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def _select(cat: Catalog, item: str, scope: Scope, strict: bool) -> List[CatalogEntry]:
    """Entries of ``item`` named by ``scope``; unknown names raise only when ``strict``."""
    if scope == "all":
        return cat.entries(item)
    names = [scope] if isinstance(scope, str) else list(scope)
    if strict:
        return [cat.get(item, name) for name in names]
    known = {e.name: e for e in cat.entries(item)}
    return [known[name] for name in names if name in known]


def _select_all(cat: Catalog, item: str, scope: Scope) -> List[CatalogEntry]:
    """Entries named by ``scope`` in one item type, or in every type when ``item='all'``."""
    if item != "all":
        return _select(cat, item, scope, strict=True)
    entries = [e for i in cat.item_types() for e in _select(cat, i, scope, strict=False)]
    wanted = {scope} if isinstance(scope, str) else set(scope)
    missing = wanted - {e.name for e in entries} - {"all"}
    if missing:
        raise UnknownItemError("no item named %s in the catalog (list them with downloader.ls())"
                               % ", ".join(repr(n) for n in sorted(missing)))
    return entries
