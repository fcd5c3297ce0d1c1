"""Fetch the SNIPS 2017 NLU benchmark files, checked against their sha256 digests.

Source: the folder ``2017-06-custom-intent-engines`` of https://github.com/sonos/nlu-benchmark
(Coucke et al. 2018, arXiv:1805.10190; CC0 1.0): for each of the 7 intents
``<Intent>/train_<Intent>_full.json`` and ``<Intent>/validate_<Intent>.json``. Downloads go
through :func:`paddlepalm.downloader.http.fetch` (resume, retry, sha256 check; a file that does
not match is removed); :func:`download_snips` can also copy them from a local folder.
"""
import os
import shutil
from typing import Callable, Optional

from paddlepalm.datasets.locate import DataNotFound
from paddlepalm.downloader.errors import ChecksumError

SNIPS_BASE_URL = "https://raw.githubusercontent.com/sonos/nlu-benchmark/master/2017-06-custom-intent-engines"

SNIPS_SHA256 = {
    "train_AddToPlaylist_full.json": "fee1b4645352e70ed8a40f1f87c3b53fc3bf75f8ebc82252a22b82c107e75b01",
    "train_BookRestaurant_full.json": "7677e82cd6e9a8191f0a4502568c786278c984900b4796d3628e46f1abf73ef4",
    "train_GetWeather_full.json": "86f414b2ad8a993134d85d16e25e5d337beae47cef993c0af2a5f440405c60f6",
    "train_PlayMusic_full.json": "901ddbe9781d1fdb8196e789c543f80df3d29ca6e237da64947905adcc0312e4",
    "train_RateBook_full.json": "bb43e4b74134300d5766f6b420d0357a63402987a225f6dc92c806c9c040ce04",
    "train_SearchCreativeWork_full.json": "87b3432de48c71c205aa5238b41d9e3f2d70bdfcd0bea2427544fb9e4bd5e5bb",
    "train_SearchScreeningEvent_full.json": "5447e9440c02e2fb08c3ae16b9f58a4d1332b4bc77fd34691402b02aa4399765",
    "validate_AddToPlaylist.json": "14cc9ee49ae477b1452632a6e835498cf4c32da397b16967c82abb3e50403e83",
    "validate_BookRestaurant.json": "4f7258ccc768b777b2eb8916532db9aa50dbd058ddf1ffb0dc59218963e7442a",
    "validate_GetWeather.json": "60c095e193655d6ca92be220fed3926ca25e18cd70c85664145efe25d80993af",
    "validate_PlayMusic.json": "922212775e26259d5bffeaf79b6048d070ca017d229df00b2cc9800f71c75d20",
    "validate_RateBook.json": "c1f8b4114da0bb5e8afd78a8062766e18b2eabb0e717539598db01b09d04619b",
    "validate_SearchCreativeWork.json": "8a5e830eddb185d3e4a9d27ded140a145d04766bdce0e58834676ede32d13e77",
    "validate_SearchScreeningEvent.json": "81e1445713e03c7c3e615353c5f3fee05f369fe9834100b9b9735900a96b9498",
}


def intent_of(filename: str) -> str:
    """``train_PlayMusic_full.json`` / ``validate_PlayMusic.json`` -> ``PlayMusic``."""
    stem = filename[:-len(".json")]
    return stem[len("train_"):-len("_full")] if stem.startswith("train_") else stem[len("validate_"):]


def url_of(filename: str, base_url: str = SNIPS_BASE_URL) -> str:
    """The file's URL under ``base_url`` (laid out as ``<Intent>/<file>``, like nlu-benchmark)."""
    return "%s/%s/%s" % (base_url.rstrip("/"), intent_of(filename), filename)


def download_snips(dest: str, base_url: str = SNIPS_BASE_URL, source_dir: Optional[str] = None,
                   on_file: Optional[Callable[[str], None]] = None) -> str:
    """Fetch (or, with ``source_dir``, copy) the 14 SNIPS files into ``dest``; return ``dest``.

    Files already in ``dest`` with the right digest are kept. Every file is checked against
    :data:`SNIPS_SHA256`: a mismatch removes it and raises ``ChecksumError``; a file missing
    from ``source_dir`` raises :class:`DataNotFound`. ``on_file(path)`` is called per file.
    """
    from paddlepalm.downloader.http import fetch, sha256_of

    os.makedirs(dest, exist_ok=True)
    for name, digest in sorted(SNIPS_SHA256.items()):
        target = os.path.join(dest, name)
        if source_dir:
            _copy_verified(os.path.join(source_dir, name), target, digest, sha256_of)
        else:
            fetch(url_of(name, base_url), target, sha256=digest)
        if on_file is not None:
            on_file(target)
    return dest


def _copy_verified(src: str, target: str, digest: str, sha256_of: Callable[[str], str]) -> None:
    if not os.path.isfile(src):
        raise DataNotFound("error: %s is missing" % src)
    if not (os.path.isfile(target) and sha256_of(target) == digest):
        shutil.copyfile(src, target + ".part")
        os.replace(target + ".part", target)
    actual = sha256_of(target)
    if actual != digest:
        os.remove(target)
        raise ChecksumError("%s: sha256 %s, expected %s (not the 2017 SNIPS file?)" % (src, actual, digest))
