"""Rendering catalog entries as a plain-text table for ``ls``."""
from typing import List, Sequence
from urllib.parse import urlsplit

from paddlepalm.downloader.catalog import CatalogEntry

COLUMNS = ("name", "model", "lang", "layers/hidden", "size", "format", "source", "sha256")


def format_table(entries: Sequence[CatalogEntry]) -> str:
    """A fixed-width table of ``entries`` with a header row."""
    rows = [list(COLUMNS)] + [_row(e) for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_listing(item: str, entries: Sequence[CatalogEntry]) -> str:
    """A titled table for one item type, with a note on unverified entries."""
    text = "%s (%d available)\n%s" % (item, len(entries), format_table(entries))
    if any(not e.verified for e in entries):
        text += ("\nsha256 'unknown': no published checksum is known, so the download is not "
                 "verified; the digest received is recorded in the installed directory.")
    return text


def _row(entry: CatalogEntry) -> List[str]:
    shape = "%s / %s" % (entry.layers or "?", entry.hidden_size or "?")
    size = "~%s MB" % _number(entry.size_mb) if entry.size_mb is not None else "?"
    return [entry.name, entry.model or "-", entry.lang or "-", shape, size, entry.format,
            _source(entry), "yes" if entry.verified else "unknown"]


def _source(entry: CatalogEntry) -> str:
    if entry.hf_repo:
        return "hf:" + entry.hf_repo
    host = urlsplit(entry.urls[0]).hostname or entry.urls[0]
    return host + (" (+%d mirrors)" % (len(entry.urls) - 1) if len(entry.urls) > 1 else "")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else "%.1f" % value
