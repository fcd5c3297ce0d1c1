"""Errors raised by :mod:`paddlepalm.downloader`."""
from paddlepalm.errors import ConfigError, PalmError


class DownloadError(PalmError):
    """A download, verification, extraction or install step failed."""


class ChecksumError(DownloadError):
    """The downloaded file's sha256 differs from the catalog's (the file has been removed)."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target dir or is a device, fifo or bad link."""


class CatalogError(ConfigError):
    """A catalog YAML file is malformed; the message names the file and the entry."""


class NetworkError(DownloadError):
    """The server could not be reached, kept failing or dropped the connection.

    Any partial file is kept, so calling ``download`` again resumes where it stopped.
    """


class DeadlineError(NetworkError):
    """The download did not finish within its deadline (``download(deadline=...)``).

    The bytes received are kept, so calling ``download`` again resumes.
    """


class LockTimeoutError(DownloadError):
    """Another process kept the item's install lock for longer than ``lock_timeout``."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status that retrying will not fix (e.g. 404)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class UnknownItemError(DownloadError, LookupError):
    """The requested item type or name is not in the catalog."""
