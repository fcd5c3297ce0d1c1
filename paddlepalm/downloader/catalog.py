"""Loading, validating and merging the downloader's catalog YAML files.

The built-in ``catalog.yaml`` is read first, then every file named by the environment variable
``PADDLEPALM_CATALOG`` (several separated by ``os.pathsep``), then the ``catalog=`` argument.
A later entry with the same item type and name replaces an earlier one; new names are appended.
"""
import difflib
import os
import re
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from paddlepalm.downloader.errors import CatalogError, UnknownItemError

ENV_VAR = "PADDLEPALM_CATALOG"
BUILTIN_CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalog.yaml")
ITEM_TYPES = ("pretrain", "vocab", "dataset")
# Checkpoint layouts; the ones in CONVERTED_FORMATS are converted to paddlepalm's on install.
FORMATS = ("paddlepalm", "paddlenlp", "hf", "palm1", "raw")
CONVERTED_FORMATS = ("paddlenlp", "hf", "palm1")

_ENTRY_FIELDS = ("name", "url", "hf_repo", "revision", "files", "sha256", "format", "model",
                 "lang", "description", "layers", "hidden_size", "size_mb")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_FILE_RE = re.compile(r"^[\w.+-]+(/[\w.+-]+)*$")

CatalogSource = Union[str, "os.PathLike[str]", Mapping[str, Any]]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Hugging Face repo entry."""

    name: str
    sha256: Optional[str] = None
    optional: bool = False


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable item: where it comes from, how to check it and what it is."""

    name: str
    item: str
    format: str
    urls: Tuple[str, ...] = ()
    hf_repo: Optional[str] = None
    revision: str = "main"
    files: Tuple[RemoteFile, ...] = ()
    sha256: Optional[str] = None
    model: Optional[str] = None
    lang: Optional[str] = None
    description: str = ""
    layers: Optional[int] = None
    hidden_size: Optional[int] = None
    size_mb: Optional[float] = None
    origin: str = field(default="", compare=False)

    @property
    def url(self) -> Optional[str]:
        """The first (primary) URL, or None for a Hugging Face entry."""
        return self.urls[0] if self.urls else None

    @property
    def source(self) -> str:
        """A short, stable description of where the item comes from (stored in the marker)."""
        if self.hf_repo:
            return "hf://%s@%s" % (self.hf_repo, self.revision)
        return self.urls[0]

    @property
    def verified(self) -> bool:
        """True when every file fetched for this entry has a known sha256."""
        if self.hf_repo:
            return all(f.sha256 for f in self.files)
        return self.sha256 is not None

    def to_dict(self) -> Dict[str, Any]:
        """Plain-data view (lists and dicts only), e.g. for JSON output."""
        data = asdict(self)
        data["urls"] = list(self.urls)
        data["files"] = [asdict(f) for f in self.files]
        data["url"] = self.url
        return data


class Catalog:
    """Entries by item type and name, in catalog order."""

    def __init__(self, sources: Sequence[str] = ()):
        self.sources = list(sources)
        self._items: "OrderedDict[str, OrderedDict[str, CatalogEntry]]" = OrderedDict()

    def add(self, entry: CatalogEntry) -> None:
        """Add ``entry``, replacing one with the same item type and name."""
        self._items.setdefault(entry.item, OrderedDict())[entry.name] = entry

    def item_types(self) -> List[str]:
        """Item types that have at least one entry."""
        return [item for item, entries in self._items.items() if entries]

    def entries(self, item: str = "all") -> List[CatalogEntry]:
        """Entries of one item type, or of all of them."""
        if item == "all":
            return [e for entries in self._items.values() for e in entries.values()]
        self._check_item(item)
        return list(self._items[item].values())

    def get(self, item: str, name: str) -> CatalogEntry:
        """The entry ``name`` of type ``item``; a close-match hint when it is unknown."""
        self._check_item(item)
        entries = self._items[item]
        if name not in entries:
            close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
            hint = ("; did you mean %s?" % ", ".join(repr(c) for c in close)) if close else ""
            raise UnknownItemError("no %s item named %r in the catalog%s (list them with "
                                   "downloader.ls(%r))" % (item, name, hint, item))
        return entries[name]

    def _check_item(self, item: str) -> None:
        if item not in self._items or not self._items[item]:
            raise UnknownItemError("unknown item type %r; the catalog offers: %s"
                                   % (item, ", ".join(self.item_types()) or "nothing"))

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._items.values())

    def __iter__(self):
        return iter(self.entries())


def user_catalog_paths(environ: Mapping[str, str] = os.environ) -> List[str]:
    """Catalog files named by ``PADDLEPALM_CATALOG`` (``os.pathsep``-separated)."""
    return [p for p in environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]


def load_catalog(catalog: Union[None, CatalogSource, Sequence[CatalogSource]] = None,
                 environ: Mapping[str, str] = os.environ) -> Catalog:
    """Built-in catalog, overridden by ``$PADDLEPALM_CATALOG`` files, then by ``catalog``.

    ``catalog`` is a YAML file path, an already-parsed mapping, or a list of those.
    Raises :class:`CatalogError` naming the file and entry when one is malformed or missing.
    """
    sources: List[Tuple[str, Any]] = [(BUILTIN_CATALOG, BUILTIN_CATALOG)]
    sources += [(p, p) for p in user_catalog_paths(environ)]
    if catalog is not None:
        extra = catalog if isinstance(catalog, (list, tuple)) else [catalog]
        for source in extra:
            label = "<catalog mapping>" if isinstance(source, Mapping) else os.fspath(source)
            sources.append((label, source))
    result = Catalog([label for label, _ in sources])
    for label, source in sources:
        data = source if isinstance(source, Mapping) else _read_yaml(label)
        for entry in parse_catalog(data, label):
            result.add(entry)
    return result


def parse_catalog(data: Any, origin: str) -> List[CatalogEntry]:
    """Validate one parsed catalog document; every problem is reported in one CatalogError."""
    if not isinstance(data, Mapping):
        raise CatalogError("%s: a catalog must be a mapping of item types to lists of entries "
                           "(got %s)" % (origin, type(data).__name__))
    problems: List[str] = []
    entries: List[CatalogEntry] = []
    for key, value in data.items():
        if key == "version":
            if value != 1:
                problems.append("%s: unsupported catalog version %r (expected 1)" % (origin, value))
            continue
        if key not in ITEM_TYPES:
            problems.append("%s: unknown top-level key %r (expected 'version' or one of: %s)"
                            % (origin, key, ", ".join(ITEM_TYPES)))
            continue
        if value is None:
            continue
        if not isinstance(value, list):
            problems.append("%s%s: %r must be a list of entries"
                            % (origin, _at_line(data, key), key))
            continue
        seen = set()
        for index, raw in enumerate(value, 1):
            where = "%s%s, %s entry #%d" % (origin, _at_line(raw), key, index)
            if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
                where += " (%r)" % raw["name"]
            entry_problems, entry = _parse_entry(raw, key, origin)
            problems += ["%s: %s" % (where, p) for p in entry_problems]
            if entry is None:
                continue
            if entry.name in seen:
                problems.append("%s: duplicate name %r in this file" % (where, entry.name))
            seen.add(entry.name)
            entries.append(entry)
    if problems:
        raise CatalogError("invalid catalog:\n  " + "\n  ".join(problems))
    return entries


def _parse_entry(raw: Any, item: str, origin: str) -> Tuple[List[str], Optional[CatalogEntry]]:
    if not isinstance(raw, Mapping):
        return ["an entry must be a mapping of fields, got %s" % type(raw).__name__], None
    problems = ["unknown field %r (allowed: %s)" % (k, ", ".join(_ENTRY_FIELDS))
                for k in raw if k not in _ENTRY_FIELDS]
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append("'name' must be a non-empty string of letters, digits and . _ + - "
                        "(it becomes a directory name), got %r" % (name,))
    has_url, has_repo = raw.get("url") is not None, raw.get("hf_repo") is not None
    if has_url == has_repo:
        problems.append("give exactly one of 'url' or 'hf_repo' (with 'files')")
    urls = _parse_urls(raw.get("url"), problems) if has_url else ()
    files: Tuple[RemoteFile, ...] = ()
    if has_repo:
        if not isinstance(raw["hf_repo"], str) or not _HF_REPO_RE.match(raw["hf_repo"]):
            problems.append("'hf_repo' must look like 'owner/name', got %r" % (raw["hf_repo"],))
        files = _parse_files(raw.get("files"), problems)
        if raw.get("sha256") is not None:
            problems.append("an 'hf_repo' entry takes per-file 'sha256' under 'files', "
                            "not a top-level one")
    elif raw.get("files") is not None:
        problems.append("'files' only goes with 'hf_repo'")
    sha256 = _parse_sha256(raw.get("sha256"), "'sha256'", problems)
    fmt = raw.get("format", "raw" if item != "pretrain" else None)
    if fmt not in FORMATS:
        problems.append("'format' must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    for key in ("layers", "hidden_size"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            problems.append("%r must be a positive integer or null, got %r" % (key, value))
    size = raw.get("size_mb")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float))
                             or size < 0):
        problems.append("'size_mb' must be a non-negative number or null, got %r" % (size,))
    for key in ("model", "lang", "description", "revision"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            problems.append("%r must be a string, got %r" % (key, raw[key]))
    if problems:
        return problems, None
    return [], CatalogEntry(
        name=name, item=item, format=fmt, urls=urls,
        hf_repo=raw.get("hf_repo"), revision=raw.get("revision") or "main", files=files,
        sha256=sha256, model=raw.get("model"), lang=raw.get("lang"),
        description=raw.get("description") or "", layers=raw.get("layers"),
        hidden_size=raw.get("hidden_size"), size_mb=size, origin=origin)


def _parse_urls(value: Any, problems: List[str]) -> Tuple[str, ...]:
    urls = value if isinstance(value, list) else [value]
    if not urls or not all(isinstance(u, str) and re.match(r"^https?://[^/\s]+", u)
                           for u in urls):
        problems.append("'url' must be an http(s) URL or a non-empty list of them (mirrors, "
                        "tried in order), got %r" % (value,))
        return ()
    return tuple(urls)


def _parse_files(value: Any, problems: List[str]) -> Tuple[RemoteFile, ...]:
    if not isinstance(value, list) or not value:
        problems.append("'files' must be a non-empty list of file names in the repo")
        return ()
    files = []
    for spec in value:
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or set(spec) - {"name", "sha256", "optional"}:
            problems.append("each of 'files' is a name or {name, sha256, optional}, got %r"
                            % (spec,))
            continue
        name = spec.get("name")
        if not isinstance(name, str) or not _FILE_RE.match(name) or ".." in name.split("/"):
            problems.append("bad file name %r in 'files' (a relative path inside the repo)"
                            % (name,))
            continue
        sha = _parse_sha256(spec.get("sha256"), "'sha256' of file %r" % name, problems)
        files.append(RemoteFile(name, sha, bool(spec.get("optional", False))))
    return tuple(files)


def _parse_sha256(value: Any, what: str, problems: List[str]) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        problems.append("%s must be 64 hex digits or null, got %r" % (what, value))
        return None
    return value.lower()


def _read_yaml(path: str) -> Any:
    if not os.path.isfile(path):
        via = " (named by $%s)" % ENV_VAR if path in user_catalog_paths() else ""
        raise CatalogError("catalog file %s%s does not exist" % (path, via))
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise CatalogError("catalog file %s is not valid YAML: %s" % (path, e)) from None


class _LineDict(dict):
    """A YAML mapping that remembers the line it started on (for error messages)."""

    line: Optional[int] = None
    key_lines: Dict[Any, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are :class:`_LineDict`."""


def _construct_line_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            mapping.key_lines[key_node.value] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            _construct_line_mapping)


def _at_line(node: Any, key: Optional[str] = None) -> str:
    if not isinstance(node, _LineDict):
        return ""
    line = node.key_lines.get(key) if key is not None else node.line
    return ", line %d" % line if line else ""
