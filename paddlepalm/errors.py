"""Exceptions raised at the edges of paddlepalm (files, configs, checkpoints, downloads).

Each carries where the problem is (file, line, key) in its message so users can fix their input
without reading a traceback from deep inside Paddle.
"""
from typing import Optional


class PalmError(Exception):
    """Base class of all paddlepalm errors."""


class DataError(PalmError, ValueError):
    """Bad input data: names the file, the 1-based line and the field."""

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None,
                 field: Optional[str] = None):
        self.path, self.line, self.field = path, line, field
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append("line %d" % line)
        if field is not None:
            where.append("field %r" % field)
        super().__init__(("%s: %s" % (", ".join(where), message)) if where else message)


class CheckpointError(PalmError, ValueError):
    """A checkpoint directory is missing a file, has a wrong-shaped tensor or an unknown type."""


class ConfigError(PalmError, ValueError):
    """An invalid YAML config; the message lists every problem with file, line and key path."""
