"""Fetching one URL to a file: streaming, progress bar, timeouts, retries, resume and sha256.

The body goes to ``<dest>.part``; an interrupted download is resumed from there with an HTTP
``Range`` request (a server that ignores the range and answers 200 restarts it from scratch).
Only a complete file is renamed to ``dest``. Each socket read has a timeout and the whole fetch
(every attempt and retry wait) has a ``deadline``, so a server trickling bytes cannot hold a
caller forever. Proxies come from ``HTTP(S)_PROXY`` / ``NO_PROXY``
because the session keeps requests' default ``trust_env=True``.
"""
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple, Union
from urllib.parse import urlsplit

import requests
import urllib3
from tqdm import tqdm

from paddlepalm.downloader.errors import (ChecksumError, DeadlineError, HTTPStatusError,
                                          NetworkError)
from paddlepalm.version import __version__

logger = logging.getLogger(__name__)

OFFLINE_HINT = "to use a local copy run: paddlepalm convert SRC_DIR DST_DIR"
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class FetchOptions:
    """How hard to try: ``retries`` extra attempts, waiting ``backoff * 2**k`` seconds.

    ``timeout`` bounds each connect and each socket read; ``deadline`` bounds one file's whole
    fetch (all attempts and waits) in seconds, ``None`` for no limit.
    """

    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: Union[float, Tuple[float, float]] = (10.0, 60.0)  # (connect, read) seconds
    progress: bool = True
    chunk_size: int = 1 << 20
    deadline: Optional[float] = 4 * 3600.0

    def timeouts(self) -> Tuple[float, float]:
        """``(connect, read)`` seconds."""
        if isinstance(self.timeout, (tuple, list)):
            return float(self.timeout[0]), float(self.timeout[1])
        return float(self.timeout), float(self.timeout)


def make_session() -> requests.Session:
    """A requests session for downloads (keeps ``trust_env`` so proxy variables apply)."""
    session = requests.Session()
    session.headers["User-Agent"] = "paddlepalm/%s (+downloader)" % __version__
    return session


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: str, sha256: Optional[str] = None,
          options: Optional[FetchOptions] = None, session: Optional[requests.Session] = None,
          sleep: Callable[[float], None] = time.sleep) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and return the file's sha256.

    An existing ``dest`` is reused when it matches ``sha256`` (or when no sha256 is given).
    Raises :class:`HTTPStatusError` for a non-retryable status such as 404,
    :class:`NetworkError` when retries are exhausted (the partial file is kept) and
    :class:`ChecksumError` when the digest differs (the file is removed).
    """
    options = options or FetchOptions()
    session = session or make_session()
    if os.path.isfile(dest):
        actual = sha256_of(dest)
        if sha256 is None or actual == sha256.lower():
            return actual
        os.remove(dest)
    part = dest + ".part"
    failure: Optional[_Failure] = None
    clock = _Deadline(options.deadline)
    attempts = 0
    for attempt in range(options.retries + 1):
        if attempt:
            delay = min(options.backoff * 2 ** (attempt - 1), options.max_backoff)
            if clock.left() is not None and delay >= clock.left():
                raise _past_deadline(url, part, options, attempts, failure)
            logger.info("retrying %s in %.2fs (attempt %d of %d): %s", url, delay, attempt + 1,
                        options.retries + 1, failure)
            sleep(delay)
        attempts += 1
        try:
            _fetch_once(session, url, part, options, clock)
            break
        except _Failure as e:
            failure = e
            if e.kind == "deadline":
                raise _past_deadline(url, part, options, attempts, None) from None
    else:
        raise _give_up(url, part, failure, options.retries + 1, session)
    os.replace(part, dest)
    if os.path.exists(part_state_path(part)):
        os.remove(part_state_path(part))
    actual = sha256_of(dest)
    if sha256 is not None and actual != sha256.lower():
        os.remove(dest)
        raise ChecksumError("sha256 mismatch for %s: expected %s, got %s; the downloaded file "
                            "was removed" % (url, sha256.lower(), actual))
    return actual


class _Failure(Exception):
    """A failure of one attempt; ``kind`` is unreachable, no_response, interrupted, status
    (retryable) or deadline (not retried)."""

    def __init__(self, kind: str, reason: str, status: Optional[int] = None):
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


class _Deadline:
    """Seconds left until a fixed moment (``None``: no deadline)."""

    def __init__(self, seconds: Optional[float]):
        self.end = None if seconds is None else time.monotonic() + float(seconds)

    def left(self) -> Optional[float]:
        return None if self.end is None else self.end - time.monotonic()

    def check(self) -> None:
        left = self.left()
        if left is not None and left <= 0:
            raise _Failure("deadline", "deadline reached")

    def bound(self, seconds: float) -> float:
        """``seconds``, or less when the deadline comes sooner (never below 1 ms)."""
        left = self.left()
        return seconds if left is None else max(min(seconds, left), 0.001)


def _past_deadline(url: str, part: str, options: FetchOptions, attempts: int,
                   failure: Optional["_Failure"]) -> DeadlineError:
    received = os.path.getsize(part) if os.path.isfile(part) else 0
    message = ("download of %s did not finish within the deadline of %gs (%s, %d bytes received%s)"
               % (url, options.deadline, _attempts(attempts), received,
                  "; last failure: %s" % failure.reason if failure else ""))
    if received:
        message += "; the bytes are kept in %s: call download again to resume, or pass a larger " \
                   "deadline=" % part
    else:
        message += "; pass a larger deadline= if the server is just slow"
    return DeadlineError(message)


def _fetch_once(session: requests.Session, url: str, part: str, options: FetchOptions,
                clock: Optional[_Deadline] = None) -> None:
    clock = clock or _Deadline(None)
    clock.check()
    offset = os.path.getsize(part) if os.path.isfile(part) else 0
    state = _read_part_state(part)
    if offset and state.get("url") != url:  # bytes of some other file: start again
        logger.info("discarding %s: it was started from %s", part, state.get("url"))
        os.remove(part)
        offset = 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets must refer to the file itself
    if offset:
        headers["Range"] = "bytes=%d-" % offset
        if state.get("validator"):  # the server sends the whole file if it changed meanwhile
            headers["If-Range"] = state["validator"]
    connect, read = options.timeouts()
    read = clock.bound(read)
    try:
        response = session.get(url, headers=headers, stream=True,
                               timeout=(clock.bound(connect), read))
    except requests.exceptions.ReadTimeout as e:  # connected, but no status line and headers
        clock.check()
        raise _Failure("no_response", "timed out after %gs waiting for the status line and "
                       "headers" % read) from e
    except (requests.ConnectionError, requests.Timeout) as e:
        clock.check()
        if _closed_without_answer(e):
            raise _Failure("no_response", "the connection was closed without an answer") from e
        raise _Failure("unreachable", _short_reason(e)) from e
    with response:
        total = _check_response(response, url, part, offset)
        if total is None:  # 416: the part file already holds the whole body
            return
        if response.status_code == 200:
            if offset:
                logger.info("%s sent the whole file instead of the requested range; "
                            "restarting from byte 0", url)
            offset = 0
            _write_part_state(part, url, response)
        else:
            logger.info("resuming %s at byte %d", url, offset)
        _stream_body(response, part, offset, total, options, clock)


def part_state_path(part: str) -> str:
    """Sidecar of a ``.part`` file recording its URL and ETag/Last-Modified."""
    return part + ".json"


def _read_part_state(part: str) -> dict:
    try:
        with open(part_state_path(part), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_part_state(part: str, url: str, response: requests.Response) -> None:
    etag = response.headers.get("ETag", "")
    validator = etag if etag and not etag.startswith("W/") else \
        response.headers.get("Last-Modified")
    with open(part_state_path(part), "w", encoding="utf-8") as f:
        json.dump({"url": url, "validator": validator}, f)


def _check_response(response: requests.Response, url: str, part: str,
                    offset: int) -> Optional[int]:
    """Raise on a bad status; return the expected full size (-1 if unknown), None if done."""
    status = response.status_code
    if status == 416 and offset:
        total = _content_range_total(response.headers.get("Content-Range", ""))
        if total == offset:
            return None
        os.remove(part)
        raise _Failure("status", "server refused to resume at byte %d; restarting" % offset,
                       status)
    if status in _RETRY_STATUSES:
        raise _Failure("status", "HTTP %d %s" % (status, response.reason), status)
    if status >= 400:
        raise HTTPStatusError("HTTP %d %s for %s" % (status, response.reason, url), status)
    if status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            os.remove(part)
            raise _Failure("status", "server resumed at the wrong offset; restarting", status)
        return int(match.group(2)) if match.group(2) != "*" else -1
    if status != 200:
        raise HTTPStatusError("unexpected HTTP %d %s for %s" % (status, response.reason, url),
                              status)
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else -1


def _stream_body(response: requests.Response, part: str, offset: int, total: int,
                 options: FetchOptions, clock: _Deadline) -> None:
    name = os.path.basename(part)[:-len(".part")]
    with open(part, "ab" if offset else "wb") as f, tqdm(
            total=total if total >= 0 else None, initial=offset, unit="B", unit_scale=True,
            unit_divisor=1024, desc=name, disable=not options.progress) as bar:
        try:
            for chunk in _iter_raw(response, options.chunk_size):
                f.write(chunk)
                bar.update(len(chunk))
                clock.check()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise _Failure("interrupted", _short_reason(e)) from e
    size = os.path.getsize(part)
    if total >= 0 and size != total:
        raise _Failure("interrupted", "connection closed after %d of %d bytes" % (size, total))


def _closed_without_answer(error: BaseException) -> bool:
    """Whether the server accepted the connection and then closed it without any response."""
    seen = error
    while seen is not None:
        text = "%s %r" % (seen, seen)
        if "RemoteDisconnected" in text or "without response" in text:
            return True
        seen = seen.__cause__ or seen.__context__ or (
            seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
    return False


def _iter_raw(response: requests.Response, chunk_size: int) -> Iterator[bytes]:
    """The body's bytes as sent (no decoding), keeping whatever arrived before a drop."""
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2: may lose the last partial chunk on a drop
        yield from response.iter_content(chunk_size=chunk_size)
        return
    while True:
        data = raw.read1(chunk_size, decode_content=False)
        if not data:
            return
        yield data


def _content_range_total(header: str) -> Optional[int]:
    match = re.match(r"bytes [^/]*/(\d+)", header)
    return int(match.group(1)) if match else None


def _give_up(url: str, part: str, failure: "_Failure", attempts: int,
             session: requests.Session) -> NetworkError:
    host = urlsplit(url).hostname or url
    received = os.path.getsize(part) if os.path.isfile(part) else 0
    if failure.kind == "no_response":
        proxy = _proxy_for(url, session)
        who = "the proxy %s" % proxy if proxy else host
        message = ("%s accepted the connection but sent no HTTP response (%s; %s): the server "
                   "(or a proxy in between) is stalled or overloaded, try again later"
                   % (who, failure.reason, _attempts(attempts)))
    elif failure.kind == "unreachable":
        proxy = _proxy_for(url, session)
        via = " (through proxy %s)" % proxy if proxy else ""
        message = "cannot reach %s%s: %s; %s" % (host, via, failure.reason, OFFLINE_HINT)
    elif failure.kind == "status":
        message = "%s for %s (gave up after %s)" % (failure.reason, url, _attempts(attempts))
    else:
        message = "download of %s was interrupted (%s): %s" % (url, _attempts(attempts),
                                                                failure.reason)
    if received:
        message += "; %d bytes kept in %s, call download again to resume" % (received, part)
    return NetworkError(message)


def _attempts(count: int) -> str:
    return "%d attempt%s" % (count, "" if count == 1 else "s")


def _proxy_for(url: str, session: requests.Session) -> Optional[str]:
    if not session.trust_env:
        return session.proxies.get(urlsplit(url).scheme)
    proxies = requests.utils.get_environ_proxies(url)
    return proxies.get(urlsplit(url).scheme) or proxies.get("all")


def _short_reason(error: BaseException) -> str:
    """The useful part of a requests/urllib3 error ("[Errno 111] Connection refused")."""
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if match:
        return match.group(0).strip()
    if isinstance(error, requests.Timeout) or "timed out" in text:
        return "timed out"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the end of the file"
    if isinstance(error, urllib3.exceptions.ProtocolError) and error.args \
            and isinstance(error.args[0], str):
        return error.args[0]  # e.g. "Connection broken: IncompleteRead(5000 bytes read, ...)"
    return text if len(text) <= 200 else text[:200] + "..."
