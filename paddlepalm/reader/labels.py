"""Label maps: label name <-> id, from a list, a dict, a JSON file, or built from training data.

PALM 2.x files use integer labels (``0``, ``1``...) with no map; those keep working unchanged.

Labels are compared exactly as written. Two labels that differ only in case or whitespace
(``pos``, ``pos ``, ``Pos``) are an error naming both lines, never silently two classes or one;
a reader's ``label_normalize`` option (``strip``, ``lower``; see :data:`NORMALIZERS`) merges them
explicitly, in the data and in the label map alike.
"""
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from paddlepalm.errors import DataError

LabelMapLike = Union[None, str, Sequence[str], Dict[str, int], "LabelMap"]

#: ``label_normalize`` options: a label as written -> the label used.
NORMALIZERS: Dict[str, Callable[[str], str]] = {
    "strip": lambda label: " ".join(label.split()),
    "lower": lambda label: " ".join(label.split()).lower(),
}
_HINT = "fix the data, or set the reader option label_normalize: lower (case and whitespace) or strip " \
        "(whitespace only)"


def normalizer(name: Optional[str]) -> Callable[[str], str]:
    """The function of a ``label_normalize`` option (``None``: labels as written)."""
    if name is None:
        return str
    if name not in NORMALIZERS:
        raise ValueError("label_normalize must be one of %s or None, got %r" % (", ".join(NORMALIZERS), name))
    return NORMALIZERS[name]


def split_labels(value: Any, sep: str = ",") -> List[str]:
    """The labels of a multi-label value: a list, or ``sep``-joined names (blanks dropped)."""
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    return [v.strip() for v in str(value).split(sep) if v.strip()]


def _loose(label: str) -> str:
    """What two labels share when they differ only in case or whitespace."""
    return " ".join(label.split()).casefold()


class LabelMap:
    """Bidirectional label <-> id mapping (ids are contiguous from 0)."""

    def __init__(self, labels: Sequence[str]):
        self.labels: List[str] = [str(l) for l in labels]
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("duplicate labels in label map: %s" % self.labels)
        self.ids: Dict[str, int] = {l: i for i, l in enumerate(self.labels)}

    def __len__(self):
        return len(self.labels)

    def __contains__(self, label):
        return str(label) in self.ids

    def id_of(self, label: str) -> int:
        return self.ids[str(label)]

    def to_dict(self) -> Dict[str, int]:
        return dict(self.ids)

    def near(self, label: str) -> Optional[str]:
        """A label of the map equal to ``label`` but for case and whitespace."""
        loose = _loose(label)
        return next((l for l in self.labels if _loose(l) == loose), None)

    def normalized(self, normalize: Optional[str]) -> "LabelMap":
        """This map with ``label_normalize`` applied (labels that then coincide are an error)."""
        if normalize is None:
            return self
        fn = normalizer(normalize)
        seen: Dict[str, str] = {}
        for label in self.labels:
            if fn(label) in seen:
                raise DataError("label map has %r and %r, the same label after label_normalize: %s"
                                % (seen[fn(label)], label, normalize))
            seen[fn(label)] = label
        return LabelMap([fn(l) for l in self.labels])

    @classmethod
    def load(cls, source: LabelMapLike, normalize: Optional[str] = None) -> Optional["LabelMap"]:
        """Accept a LabelMap, a list of names, a {name: id} dict, or a JSON file of either."""
        loaded = cls._load(source)
        return None if loaded is None else loaded.normalized(normalize)

    @classmethod
    def _load(cls, source: LabelMapLike) -> Optional["LabelMap"]:
        if source is None or isinstance(source, LabelMap):
            return source
        if isinstance(source, str):
            if not os.path.isfile(source):
                raise DataError("label map file not found", path=source)
            try:
                with open(source, encoding="utf-8") as f:
                    source = json.load(f)
            except json.JSONDecodeError as e:
                raise DataError("invalid JSON: %s" % e.msg, path=source, line=e.lineno) from None
            except UnicodeDecodeError as e:
                raise DataError("not valid UTF-8 (byte 0x%02x at position %d); re-save the file as UTF-8"
                                % (e.object[e.start], e.start + 1), path=source) from None
        if isinstance(source, dict):
            ordered = sorted(source.items(), key=lambda kv: kv[1])
            ids = [i for _, i in ordered]
            if ids != list(range(len(ids))):
                raise DataError("label ids must be 0..%d without gaps, got %s" % (len(ids) - 1, ids))
            return cls([k for k, _ in ordered])
        return cls(list(source))

    @classmethod
    def from_values(cls, values: Iterable[str]) -> "LabelMap":
        """Sorted distinct labels; all-integer labels keep their numeric order 0..max."""
        distinct = sorted(set(str(v) for v in values))
        if distinct and all(v.strip().lstrip("-").isdigit() for v in distinct):
            top = max(int(v) for v in distinct)
            return cls([str(i) for i in range(top + 1)])
        return cls(distinct)

    @classmethod
    def from_examples(cls, labelled: Iterable[Tuple[Any, Mapping[str, Any]]], normalize: Optional[str] = None,
                      field: str = "label") -> "LabelMap":
        """The map of the ``(label, example)`` pairs of a training file (see :meth:`from_values`).

        Labels differing only in case or whitespace are a :class:`DataError` naming both lines,
        unless ``normalize`` makes them one label.
        """
        fn = normalizer(normalize)
        first: Dict[str, Tuple[str, Mapping[str, Any]]] = {}
        values = []
        for value, example in labelled:
            label = fn(str(value))
            values.append(label)
            seen = first.setdefault(_loose(label), (label, example))
            if seen[0] != label:
                raise DataError("label %r and label %r (line %s) differ only in case or whitespace; %s"
                                % (label, seen[0], seen[1].get("_line"), _HINT), path=example.get("_file"),
                                line=example.get("_line"), field=field)
        return cls.from_values(values)


def encode_label(label_map: Optional[LabelMap], value, example: dict, field: str = "label",
                 normalize: Optional[str] = None) -> int:
    """The id of ``value``; integer strings pass through when there is no map (PALM files)."""
    text = normalizer(normalize)(str(value))
    if label_map is None:
        try:
            return int(text.strip())
        except ValueError:
            raise DataError("label %r is not an integer; give the reader a label_map" % text,
                            path=example.get("_file"), line=example.get("_line"), field=field) from None
    if text not in label_map:
        near = label_map.near(text)
        if near is not None:
            raise DataError("label %r is not in the label map, but %r is: they differ only in case or "
                            "whitespace; %s" % (text, near, _HINT),
                            path=example.get("_file"), line=example.get("_line"), field=field)
        raise DataError("unknown label %r (known: %s)" % (text, ", ".join(label_map.labels[:20])),
                        path=example.get("_file"), line=example.get("_line"), field=field)
    return label_map.id_of(text)
