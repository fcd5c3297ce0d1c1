"""One batching path for every reader: dynamic padding, optional length buckets, seeded shuffles.

Features are dicts; list-valued fields are padded to the longest in the batch (pad value per
field), scalar fields are stacked. ``attention_mask`` is made from ``input_ids`` lengths.

A long document is one feature with a ``chunks`` list: one dict of row fields (``input_ids``,
``token_type_ids``, ...) per encoder row. A batch of such features has one row per chunk (the
documents' chunks in document order, then chunk order) and one entry per document for every
other field, plus ``chunk_rows`` ``[D, K]`` (the row of each document's k-th chunk; 0 where
``chunk_mask`` is 0). Batches keep a document's chunks together, and ``max_rows`` caps the rows
(chunks) per batch so memory stays bounded however long the documents are.
"""
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

Feature = Dict[str, object]
Batch = Dict[str, np.ndarray]

DEFAULT_PAD_VALUES = {"token_type_ids": 0, "task_type_ids": 0, "label_ids": -100,
                      "word_labels": -100, "word_starts": 0, "mlm_labels": -100}
CHUNKS = "chunks"


def num_rows(feature: Feature) -> int:
    """Encoder rows a feature takes: its number of chunks, else 1."""
    return len(feature[CHUNKS]) if CHUNKS in feature else 1


def feature_length(feature: Feature, length_key: str = "input_ids") -> int:
    """Tokens of a feature (all chunks together), the key of length buckets."""
    if CHUNKS in feature:
        return sum(len(c[length_key]) for c in feature[CHUNKS])
    return len(feature[length_key]) if length_key in feature else 1


def pad_batch(features: Sequence[Feature], pad_values: Dict[str, object],
              skip: Sequence[str] = ()) -> Batch:
    """Stack features into arrays; lists are right-padded to the batch's longest."""
    if CHUNKS in features[0]:
        return _pad_chunked(features, pad_values, skip)
    batch: Batch = {}
    for name in features[0]:
        if name in skip:
            continue
        values = [f[name] for f in features]
        first = values[0]
        if isinstance(first, (list, tuple, np.ndarray)) and not np.isscalar(first):
            arrays = [np.asarray(v) for v in values]
            longest = max(a.shape[0] for a in arrays)
            trailing = arrays[0].shape[1:]
            dtype = np.int64 if arrays[0].dtype.kind in "iub" else np.float32
            pad = pad_values.get(name, DEFAULT_PAD_VALUES.get(name, 0))
            out = np.full((len(arrays), longest) + trailing, pad, dtype=dtype)
            for i, a in enumerate(arrays):
                if a.shape[0]:
                    out[i, :a.shape[0]] = a
            batch[name] = out
            if name == "input_ids":
                mask = np.zeros((len(arrays), longest), dtype=np.int64)
                for i, a in enumerate(arrays):
                    mask[i, :a.shape[0]] = 1
                batch["attention_mask"] = mask
        else:
            arr = np.asarray(values)
            batch[name] = arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(np.float32)
    return batch


def _pad_chunked(features: Sequence[Feature], pad_values: Dict[str, object], skip: Sequence[str]) -> Batch:
    """Documents of several chunks -> row fields for every chunk + document fields + chunk_rows."""
    rows = [chunk for f in features for chunk in f[CHUNKS]]
    batch = pad_batch(rows, pad_values, skip)
    rest = [{k: v for k, v in f.items() if k != CHUNKS} for f in features]
    if rest[0]:
        batch.update(pad_batch(rest, pad_values, skip))
    counts = [len(f[CHUNKS]) for f in features]
    width = max(counts)
    chunk_rows = np.zeros((len(features), width), dtype=np.int64)
    chunk_mask = np.zeros((len(features), width), dtype=np.int64)
    start = 0
    for d, n in enumerate(counts):
        chunk_rows[d, :n] = np.arange(start, start + n)
        chunk_mask[d, :n] = 1
        start += n
    batch["chunk_rows"], batch["chunk_mask"] = chunk_rows, chunk_mask
    return batch


def slice_documents(batch: Batch, lo: int, hi: int) -> Batch:
    """Documents ``[lo, hi)`` of a chunked batch: their rows (chunks), their document fields, and
    ``chunk_rows`` renumbered from 0 (for data-parallel sharding)."""
    rows, mask = batch["chunk_rows"][lo:hi], batch["chunk_mask"][lo:hi]
    first, last = int(rows[0, 0]), int(rows[mask > 0].max()) + 1
    num_docs, num_rows = batch["chunk_rows"].shape[0], batch["input_ids"].shape[0]
    out: Batch = {}
    for key, value in batch.items():
        if key == "chunk_rows":
            out[key] = np.where(mask > 0, rows - first, 0)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == num_docs:
            out[key] = value[lo:hi]  # (when rows == documents, every document is one row: the same slice)
        elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == num_rows:
            out[key] = value[first:last]
        else:
            out[key] = value
    return out


def _split(order: np.ndarray, batch_size: int, costs: Optional[np.ndarray],
           max_cost: Optional[int]) -> List[np.ndarray]:
    """Consecutive batches of at most ``batch_size`` items and ``max_cost`` total cost."""
    if max_cost is None or costs is None:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches, current, total = [], [], 0
    for i in order:
        c = int(costs[i])
        if current and (len(current) == batch_size or total + c > max_cost):
            batches.append(np.asarray(current))
            current, total = [], 0
        current.append(i)
        total += c
    if current:
        batches.append(np.asarray(current))
    return batches


def length_groups(lengths: Sequence[int], call_cost: int) -> List[List[int]]:
    """Split one batch into length-sorted sub-batches that cost the least to run.

    A sub-batch costs ``call_cost`` (the fixed cost of one engine call, in tokens) plus its rows
    times its longest length (what it is padded to). Returns index lists into ``lengths``, shortest
    group first; exact (dynamic programming over the sorted lengths, O(n^2) for n rows).
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    best = [0] + [None] * n  # best[j]: least cost of the j shortest rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        for i in range(j):
            cost = best[i] + call_cost + (j - i) * longest
            if best[j] is None or cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def batch_order(lengths: Sequence[int], batch_size: int, shuffle: bool, rng: np.random.Generator,
                bucket: bool = False, bucket_factor: int = 50, drop_last: bool = False,
                costs: Optional[Sequence[int]] = None, max_cost: Optional[int] = None,
                split_cost: Optional[int] = None) -> List[np.ndarray]:
    """Index lists of each batch for one epoch.

    With ``bucket``, examples are shuffled, cut into pools of ``batch_size * bucket_factor``,
    sorted by length inside each pool and split into batches, whose order is then shuffled: padding
    waste falls while batches stay random. With ``max_cost``, a batch also ends before its items'
    ``costs`` (e.g. encoder rows) would exceed ``max_cost``. With ``split_cost`` (for inference:
    the items keep their batches, only the order of rows changes), each batch is further split by
    :func:`length_groups` when padding it to its longest row costs more than extra engine calls.
    """
    n = len(lengths)
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket:
        pool = batch_size * bucket_factor
        lengths = np.asarray(lengths)
        chunks = []
        for start in range(0, n, pool):
            part = order[start:start + pool]
            chunks.append(part[np.argsort(lengths[part], kind="stable")])
        order = np.concatenate(chunks) if chunks else order
    batches = _split(order, batch_size, None if costs is None else np.asarray(costs), max_cost)
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if bucket and shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if split_cost is not None:
        lengths = np.asarray(lengths)
        batches = [b[group] for b in batches for group in length_groups(lengths[b].tolist(), split_cost)]
    return batches


class Batcher:
    """Iterates batches over cached features for a number of epochs (``None``: forever).

    Its state (epoch, position in the epoch, the shuffle RNG at the epoch's start) is saved with
    checkpoints, so a resumed run sees exactly the batches an uninterrupted one would. ``collate``
    gets ``(features, rng)``; ``rng`` is derived from (seed, epoch, position), so random choices
    made while batching (e.g. dynamic masking) repeat on resume too.

    ``max_rows`` caps the encoder rows of a batch (a chunked document takes one row per chunk); a
    batch then holds fewer than ``batch_size`` documents when they are long.

    ``collate_rng=False``: ``collate`` makes no random choices and gets ``None`` instead of a
    generator (seeding one costs ~20 us a batch, a few % of a one-text ONNX Runtime prediction).

    ``split_cost`` (inference only, unchunked features): each batch is cut into length-sorted
    sub-batches where padding costs more than another engine call of ``split_cost`` tokens
    (:func:`length_groups`); results keep their ``feature_index``, so callers that sort by it
    see no difference but speed.
    """

    def __init__(self, features: Sequence[Feature], batch_size: int,
                 collate: Callable[[List[Feature], Optional[np.random.Generator]], Batch],
                 shuffle: bool = True, seed: Optional[int] = None, bucket: bool = False,
                 drop_last: bool = False, length_key: str = "input_ids", max_rows: Optional[int] = None,
                 collate_rng: bool = True, split_cost: Optional[int] = None):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got %r" % (batch_size,))
        self.rows = [num_rows(f) for f in features]
        if max_rows is not None:
            if max_rows < 1:
                raise ValueError("max_rows must be >= 1, got %r" % (max_rows,))
            widest = max(self.rows, default=1)
            if widest > max_rows:
                raise ValueError("a feature takes %d encoder rows, more than max_rows=%d allows"
                                 % (widest, max_rows))
        self.max_rows = max_rows
        if split_cost is not None and (shuffle or bucket or drop_last):
            raise ValueError("split_cost is for inference batches: not with shuffle, bucket or drop_last")
        if max(self.rows, default=1) > 1:
            split_cost = None  # chunked documents are padded per chunk row: nothing to gain
        self.split_cost = split_cost
        self.features = features
        self.batch_size = batch_size
        self.collate = collate
        self.collate_rng = bool(collate_rng)
        self.shuffle = shuffle
        self.bucket = bucket
        self.drop_last = drop_last
        self.seed = int(np.random.SeedSequence(seed).entropy % (2 ** 63)) if seed is None else int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.lengths = [feature_length(f, length_key) for f in features]
        self.epoch = 0
        self.position = 0  # batches already served in the current epoch
        self._epoch_start_state = self._initial_state = self.rng.bit_generator.state

    def rewind(self) -> None:
        """Back to the very first batch of the first epoch."""
        self.epoch, self.position = 0, 0
        self._epoch_start_state = self._initial_state

    def steps_per_epoch(self) -> int:
        if self.max_rows is not None or self.split_cost is not None:  # count this epoch's plan
            return len(self._plan())
        n = len(self.features)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _plan(self) -> List[np.ndarray]:
        self.rng.bit_generator.state = self._epoch_start_state
        return batch_order(self.lengths, self.batch_size, self.shuffle, self.rng, self.bucket,
                           drop_last=self.drop_last, costs=self.rows, max_cost=self.max_rows,
                           split_cost=self.split_cost)

    def epoch_batches(self) -> Iterator[Batch]:
        """The rest of the current epoch (all of it, unless resumed mid-way)."""
        plan = self._plan()
        while self.position < len(plan):
            idx = plan[self.position]
            rng = np.random.default_rng([self.seed, self.epoch, self.position]) if self.collate_rng else None
            self.position += 1
            yield self.collate([self.features[i] for i in idx], rng)
        self.epoch += 1
        self.position = 0
        self._epoch_start_state = self.rng.bit_generator.state

    def iterate(self, num_epochs: Optional[int]) -> Iterator[Batch]:
        """Batches until ``num_epochs`` epochs (counted from epoch 0) are done; ``None``: forever."""
        while num_epochs is None or self.epoch < num_epochs:
            yield from self.epoch_batches()

    def state_dict(self) -> dict:
        return {"epoch_start_rng": self._epoch_start_state, "epoch": self.epoch,
                "position": self.position, "seed": self.seed}

    def set_state_dict(self, state: dict) -> None:
        self._epoch_start_state = state["epoch_start_rng"]
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
