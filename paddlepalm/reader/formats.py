"""Reading records from TSV (PALM's format), CSV and JSON-lines files, with line numbers.

Every record comes back as ``(line_number, {field: value})``. Problems raise
:class:`~paddlepalm.errors.DataError` naming the file, the 1-based line and the field.
"""
import csv
import io
import json
import os
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

from paddlepalm.errors import DataError

FORMATS = ("tsv", "csv", "jsonl")
Record = Tuple[int, Dict[str, object]]


def guess_format(path: str, default: str = "tsv") -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"tsv": "tsv", "txt": "tsv", "csv": "csv", "jsonl": "jsonl", "json": "jsonl"}.get(ext, default)


def _lines(path: str) -> Iterator[Tuple[int, str]]:
    if not os.path.isfile(path):
        raise DataError("file not found", path=path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError("not valid UTF-8 (byte 0x%02x at column %d); re-save the file as UTF-8"
                                % (raw[e.start], e.start + 1), path=path, line=lineno) from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line.rstrip("\r\n")


def read_records(path: str, file_format: str = "tsv", required: Sequence[str] = (),
                 fields: Optional[Mapping[str, str]] = None) -> Iterator[Record]:
    """Yield ``(line, record)``; ``fields`` maps reader input names to the file's column names."""
    if file_format not in FORMATS:
        raise DataError("unknown file_format %r; expected one of %s" % (file_format, ", ".join(FORMATS)),
                        path=path)
    rename = {col: name for name, col in (fields or {}).items()}
    produced = 0
    source = {"tsv": _read_tsv, "csv": _read_csv, "jsonl": _read_jsonl}[file_format](path)
    header_checked = False
    for lineno, record in source:
        if rename:
            record = {rename.get(k, k): v for k, v in record.items()}
        if not header_checked:
            missing = [f for f in required if f not in record]
            if missing:
                hint = " (map columns with fields: {%s: <column>})" % missing[0] if fields is None else ""
                raise DataError("missing column(s) %s; found %s%s"
                                % (", ".join(missing), ", ".join(record) or "none", hint),
                                path=path, line=1 if file_format != "jsonl" else lineno,
                                field=missing[0])
            header_checked = file_format != "jsonl"
        if file_format == "jsonl":
            missing = [f for f in required if f not in record]
            if missing:
                raise DataError("missing field(s) %s" % ", ".join(missing), path=path, line=lineno,
                                field=missing[0])
        produced += 1
        yield lineno, record
    if produced == 0:
        raise DataError("no examples (empty file or header only)", path=path)


def _read_tsv(path: str) -> Iterator[Record]:
    header = None
    for lineno, line in _lines(path):
        if header is None:
            if not line.strip():
                continue
            header = [h.strip() for h in line.split("\t")]
            continue
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(header):
            raise DataError("expected %d tab-separated columns (%s), found %d"
                            % (len(header), ", ".join(header), len(cols)), path=path, line=lineno)
        yield lineno, dict(zip(header, cols))
    if header is None:
        raise DataError("empty file: a header line is required (e.g. 'label<TAB>text_a')", path=path)


def _read_csv(path: str) -> Iterator[Record]:
    text = "\n".join(line for _, line in _lines(path))
    if not text.strip():
        raise DataError("empty file: a header line is required", path=path)
    reader = csv.reader(io.StringIO(text))
    header = None
    for cols in reader:
        lineno = reader.line_num
        if header is None:
            header = [h.strip() for h in cols]
            continue
        if not cols:
            continue
        if len(cols) != len(header):
            raise DataError("expected %d comma-separated columns (%s), found %d"
                            % (len(header), ", ".join(header), len(cols)), path=path, line=lineno)
        yield lineno, dict(zip(header, cols))


def _read_jsonl(path: str) -> Iterator[Record]:
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError("invalid JSON: %s (column %d)" % (e.msg, e.colno), path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise DataError("expected a JSON object per line", path=path, line=lineno)
        yield lineno, record
