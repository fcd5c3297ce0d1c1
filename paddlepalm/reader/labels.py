"""Label maps: label name <-> id, from a list, a dict, a JSON file, or built from training data.

PALM 2.x files use integer labels (``0``, ``1``...) with no map; those keep working unchanged.
"""
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Union

from paddlepalm.errors import DataError

LabelMapLike = Union[None, str, Sequence[str], Dict[str, int], "LabelMap"]


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

    @classmethod
    def load(cls, source: LabelMapLike) -> Optional["LabelMap"]:
        """Accept a LabelMap, a list of names, a {name: id} dict, or a JSON file of either."""
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
        if distinct and all(v.lstrip("-").isdigit() for v in distinct):
            top = max(int(v) for v in distinct)
            return cls([str(i) for i in range(top + 1)])
        return cls(distinct)


def encode_label(label_map: Optional[LabelMap], value, example: dict, field: str = "label") -> int:
    """The id of ``value``; integer strings pass through when there is no map (PALM files)."""
    text = str(value).strip()
    if label_map is None:
        try:
            return int(text)
        except ValueError:
            raise DataError("label %r is not an integer; give the reader a label_map" % text,
                            path=example.get("_file"), line=example.get("_line"), field=field) from None
    if text not in label_map:
        raise DataError("unknown label %r (known: %s)" % (text, ", ".join(label_map.labels[:20])),
                        path=example.get("_file"), line=example.get("_line"), field=field)
    return label_map.id_of(text)
