"""Teacher outputs cached once per example (readers without random augmentation only).

Rows are keyed by ``(task, feature_index)`` -- the index every reader gives each feature it
holds -- and stored as numpy arrays exactly as the teacher produced them in the batch where the
example first appeared. Axes padded to the batch length (``length_axes``) are cropped or
zero-padded to the width of the batch asking for them; positions past an example's real length
are masked by every loss, so the result equals a fresh teacher pass on that batch.

Whether a reader may be cached: never a masking reader (:class:`~paddlepalm.reader.MaskLMReader`
draws new masks every epoch) or a reader declaring ``random_augmentation = True``; readers that
override ``collate`` in ways not known to be deterministic are refused too (set
``random_augmentation = False`` on the class to allow them).
"""
import logging
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import paddle

logger = logging.getLogger("paddlepalm")

Axes = Dict[str, Tuple[int, ...]]


def reader_augments(reader) -> Tuple[bool, str]:
    """``(True, why)`` if the reader's batches may differ between epochs for the same example.
    A view of a shared reader (``input_source``, e.g. a ``JointLabelReader.view``) is judged by
    that reader."""
    from paddlepalm.reader.base import Reader
    from paddlepalm.reader.mask_lm import MaskLMReader
    from paddlepalm.reader.match import MatchReader

    reader = getattr(reader, "input_source", reader)
    flag = getattr(type(reader), "random_augmentation", None)
    if flag is not None:
        return bool(flag), "%s.random_augmentation = %s" % (type(reader).__name__, flag)
    if isinstance(reader, MaskLMReader):
        return True, "%s draws new masks for every batch" % type(reader).__name__
    owner = next((k for k in type(reader).__mro__ if "collate" in k.__dict__), Reader)
    if owner not in (Reader, MatchReader):
        return True, ("%s overrides collate (set random_augmentation = False on the class if its "
                      "batches are deterministic)" % owner.__name__)
    return False, ""


class TeacherCache:
    """Per-example teacher tensors for the tasks it was enabled for."""

    def __init__(self):
        self._rows: Dict[str, Dict[int, Dict[str, np.ndarray]]] = {}

    def enable(self, task: str) -> None:
        self._rows.setdefault(task, {})

    def enabled(self, task: str) -> bool:
        return task in self._rows

    def size(self, task: str) -> int:
        return len(self._rows.get(task, {}))

    def clear(self) -> None:
        for rows in self._rows.values():
            rows.clear()

    def store(self, task: str, feature_index: Iterable[int], tensors: Dict[str, paddle.Tensor]) -> None:
        rows = self._rows[task]
        arrays = {k: v.numpy() for k, v in tensors.items()}
        for i, fi in enumerate(np.asarray(feature_index).reshape(-1)):
            rows[int(fi)] = {k: a[i] for k, a in arrays.items()}

    def lookup(self, task: str, feature_index: Sequence[int], like: Dict[str, paddle.Tensor],
               length_axes: Axes) -> Optional[Dict[str, paddle.Tensor]]:
        """The batch's tensors from the cache, or None if any row is missing. ``like`` gives, per
        name, a tensor of this batch whose ``length_axes`` have the wanted widths."""
        rows = self._rows.get(task)
        if rows is None:
            return None
        keys = [int(fi) for fi in np.asarray(feature_index).reshape(-1)]
        if any(k not in rows for k in keys):
            return None
        out = {}
        for name, ref in like.items():
            axes = length_axes.get(name, ())
            widths = {a: ref.shape[a] for a in axes}
            out[name] = paddle.to_tensor(np.stack([_fit(rows[k][name], widths) for k in keys]))
        return out


def _fit(row: np.ndarray, widths: Dict[int, int]) -> np.ndarray:
    """Crop or zero-pad ``row`` (a batch row: batch axis ``a`` is row axis ``a - 1``)."""
    for axis, width in widths.items():
        a = axis - 1
        have = row.shape[a]
        if have > width:
            row = np.take(row, np.arange(width), axis=a)
        elif have < width:
            pad = [(0, 0)] * row.ndim
            pad[a] = (0, width - have)
            row = np.pad(row, pad)
    return row
