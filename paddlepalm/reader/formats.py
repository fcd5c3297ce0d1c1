"""Reading records from TSV (PALM's format), CSV, JSON lines and JSON array files, with line numbers.

Every record comes back as ``(line_number, {field: value})``. Problems raise
:class:`~paddlepalm.errors.DataError` naming the file, the 1-based line and the field.

* ``tsv`` / ``csv``: a header line names the columns, unless ``header=False``; then columns are
  only reachable by position (``fields={"text_a": 2, "label": 1}``, numbered from 1) and the
  others are named ``column<N>``.
* ``jsonl``: one JSON object per line. ``json``: a JSON array of objects (a common export
  format), or JSON lines in a ``.json`` file.
* The declared format is checked against the content: a JSON file read as TSV or a
  tab-separated file read as CSV is an error saying which ``file_format`` to use.
"""
import csv
import io
import json
import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from paddlepalm.errors import DataError

FORMATS = ("tsv", "csv", "jsonl", "json")
Record = Tuple[int, Dict[str, object]]
Column = Union[str, int]  # a column name, or a 1-based position
_EXTENSIONS = {"tsv": "tsv", "txt": "tsv", "csv": "csv", "jsonl": "jsonl", "json": "json", "ndjson": "jsonl"}


def guess_format(path: str, default: str = "tsv") -> str:
    """The format a file name suggests (``.json`` -> ``json``: an array or JSON lines)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return _EXTENSIONS.get(ext, default)


def resolve_format(path: str, declared: Optional[str]) -> str:
    """The format a reader reads ``path`` in: ``declared``, else guessed from the name. PALM's
    default ``'tsv'`` yields to a name that says otherwise (``.csv``, ``.jsonl``, ``.json``)."""
    if declared is None or (declared == "tsv" and guess_format(path) != "tsv"):
        return guess_format(path)
    return declared


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


def first_line(path: str) -> Tuple[int, str]:
    """``(line number, text)`` of the first non-blank line; ``(0, '')`` for an empty file."""
    for lineno, line in _lines(path):
        if line.strip():
            return lineno, line
    return 0, ""


def check_format(path: str, file_format: str) -> None:
    """Raise :class:`DataError` when the content plainly is not ``file_format``."""
    lineno, line = first_line(path)
    start = line.lstrip()[:1]
    if not start:
        return
    if file_format in ("tsv", "csv") and start in "{[":
        kind = "JSON lines" if start == "{" else "a JSON array"
        raise DataError("the file looks like %s (the line starts with %r), not %s; set file_format: %s"
                        % (kind, start, file_format, "jsonl" if start == "{" else "json"),
                        path=path, line=lineno)
    if file_format == "jsonl" and start != "{":
        hint = "set file_format: json" if start == "[" else "set file_format: tsv or csv"
        raise DataError("expected JSON lines (one object per line starting with '{'), found %r; %s"
                        % (line[:40], hint), path=path, line=lineno)
    if file_format == "json" and start not in "{[":
        raise DataError("expected a JSON array of objects or JSON lines, found %r; set file_format: "
                        "tsv or csv" % line[:40], path=path, line=lineno)
    if file_format == "csv" and "\t" in line and "," not in line:
        raise DataError("the header has tabs but no commas: the file looks tab-separated; set "
                        "file_format: tsv", path=path, line=lineno)


def read_records(path: str, file_format: str = "tsv", required: Sequence[str] = (),
                 fields: Optional[Mapping[str, Column]] = None, header: bool = True,
                 not_null: Sequence[str] = ()) -> Iterator[Record]:
    """Yield ``(line, record)``.

    ``fields`` maps reader input names to the file's column names (or 1-based positions);
    ``required`` inputs must be present and the ``not_null`` ones must not be JSON ``null``.
    """
    if file_format not in FORMATS:
        raise DataError("unknown file_format %r; expected one of %s" % (file_format, ", ".join(FORMATS)),
                        path=path)
    check_format(path, file_format)
    fields = dict(fields or {})
    positions = {name: col for name, col in fields.items() if isinstance(col, int) and not isinstance(col, bool)}
    rename = {col: name for name, col in fields.items() if name not in positions}
    if positions and file_format in ("jsonl", "json"):
        raise DataError("fields %s give column positions, but %s records have field names"
                        % (", ".join(sorted(positions)), file_format), path=path)
    if not header and file_format in ("tsv", "csv"):
        unnamed = [f for f in required if f not in positions]
        if unnamed:
            raise DataError("a file without a header line needs its columns by position: give fields: "
                            "{%s: <column number>}" % unnamed[0], path=path, field=unnamed[0])
    if file_format in ("tsv", "csv"):
        source = _read_table(path, "\t" if file_format == "tsv" else ",", header, positions)
    else:
        source = _read_json(path, lines_only=file_format == "jsonl")
    produced = 0
    header_checked = False
    for lineno, record in source:
        absent = [(name, col) for col, name in rename.items() if col not in record and name in required]
        original = [k for k in record if header or not k.startswith("column")]
        if rename:
            record = {rename.get(k, k): v for k, v in record.items()}
        by_line = file_format in ("jsonl", "json")
        if absent and (not header_checked or by_line):
            name, col = absent[0]
            raise DataError("column %r (fields: {%s: %s}) is not in the file; found %s"
                            % (col, name, col, ", ".join(original) or "none"),
                            path=path, line=lineno if by_line else first_line(path)[0] or 1, field=name)
        if not header_checked or by_line:
            missing = [f for f in required if f not in record]
            if missing:
                if by_line:
                    raise DataError("missing field(s) %s" % ", ".join(missing), path=path, line=lineno,
                                    field=missing[0])
                hint = " (map columns with fields: {%s: <column>})" % missing[0] if not fields else ""
                found = list(record) if header else []
                raise DataError("missing column(s) %s; found %s%s%s"
                                % (", ".join(missing), ", ".join(found) or "none", hint,
                                   _separator_hint(path, file_format)),
                                path=path, line=first_line(path)[0] or 1, field=missing[0])
            header_checked = True
        for name in not_null:
            if name in record and record[name] is None:
                raise DataError("is null; give a value (or drop the line)", path=path, line=lineno, field=name)
        produced += 1
        yield lineno, record
    if produced == 0:
        raise DataError("no examples (empty file or header only)", path=path)


def _separator_hint(path: str, file_format: str) -> str:
    _, line = first_line(path)
    if file_format == "tsv" and "\t" not in line and "," in line:
        return "; the header has commas but no tabs: the file looks comma-separated, set file_format: csv"
    return ""


def _read_table(path: str, sep: str, header: bool, positions: Mapping[str, int]) -> Iterator[Record]:
    """Rows of a TSV (split on tabs, PALM's way: no quoting) or CSV file as records."""
    rows = _tsv_rows(path) if sep == "\t" else _csv_rows(path)
    names: Optional[List[str]] = None
    kind = "tab" if sep == "\t" else "comma"
    for lineno, cols in rows:
        if names is None and header:
            names = [h.strip() for h in cols]
            _check_positions(path, lineno, positions, len(names))
            continue
        if names is None:  # no header: the first row sets the column count
            names = ["column%d" % (i + 1) for i in range(len(cols))]
            _check_positions(path, lineno, positions, len(names))
        if len(cols) != len(names):
            shown = ", ".join(names) if header else "as on the first line"
            raise DataError("expected %d %s-separated columns (%s), found %d"
                            % (len(names), kind, shown, len(cols)), path=path, line=lineno)
        record: Dict[str, object] = dict(zip(names, cols))
        for name, col in positions.items():
            record[name] = cols[col - 1]
        yield lineno, record
    if names is None:
        if header:
            raise DataError("empty file: a header line is required (e.g. 'label%stext_a')"
                            % ("<TAB>" if sep == "\t" else ","), path=path)
        raise DataError("empty file", path=path)


def _check_positions(path: str, lineno: int, positions: Mapping[str, int], count: int) -> None:
    for name, col in positions.items():
        if not 1 <= col <= count:
            raise DataError("column %d does not exist: the file has %d column%s (numbered from 1)"
                            % (col, count, "" if count == 1 else "s"), path=path, line=lineno, field=name)


def _tsv_rows(path: str) -> Iterator[Tuple[int, List[str]]]:
    for lineno, line in _lines(path):
        if line.strip():
            yield lineno, line.split("\t")


def _csv_rows(path: str) -> Iterator[Tuple[int, List[str]]]:
    text = "\n".join(line for _, line in _lines(path))
    reader = csv.reader(io.StringIO(text))
    try:
        for cols in reader:
            if cols and any(c.strip() for c in cols):
                yield reader.line_num, cols
    except csv.Error as e:
        raise DataError("invalid CSV: %s" % e, path=path, line=reader.line_num) from None


def _read_json(path: str, lines_only: bool) -> Iterator[Record]:
    lineno, line = first_line(path)
    if not lines_only and line.lstrip().startswith("["):
        yield from _read_json_array(path)
        return
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError("invalid JSON: %s (column %d)" % (e.msg, e.colno), path=path, line=lineno) from None
        if not isinstance(record, dict):
            raise DataError("expected a JSON object per line, got %s" % _json_type(record), path=path, line=lineno)
        yield lineno, record


def _read_json_array(path: str) -> Iterator[Record]:
    """The objects of a ``[{...}, {...}]`` file, each with the line it starts on."""
    text = "\n".join(line for _, line in _lines(path))
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line, counted = 1, 0

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    pos = skip(pos)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError("invalid JSON: %s (column %d)" % (e.msg, e.colno), path=path, line=e.lineno) from None
        if not isinstance(record, dict):
            raise DataError("expected an array of JSON objects, got %s" % _json_type(record), path=path,
                            line=line_at(pos))
        yield line_at(pos), record
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            rest = skip(pos + 1)
            if rest < len(text):
                raise DataError("unexpected text after the JSON array", path=path, line=line_at(rest))
            return
        raise DataError("expected ',' or ']' in the JSON array", path=path, line=line_at(min(pos, len(text))))


def _json_type(value) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
