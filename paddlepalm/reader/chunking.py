"""Long inputs as several encoder rows: token chunks (classification, matching) and word windows
(sequence labelling), as pure functions on lengths.

A *chunk* is a span ``[start, end)`` of a document's sub-word pieces; consecutive chunks start
``stride`` pieces apart, so with ``stride == budget`` every piece is in exactly one chunk and with a
smaller stride neighbouring chunks overlap by ``budget - stride`` pieces. A *window* is the same
for word sequences, cut between words. Each word is then predicted from the window where it is
most central (the one whose nearer edge is farthest from the word), as in BERT's reading of long
SQuAD contexts.
"""
from typing import List, Optional, Sequence, Tuple

Span = Tuple[int, int]


def check_stride(stride: Optional[int], budget: int, what: str = "chunk_stride") -> int:
    """``stride`` (default: ``budget``, no overlap) after checking ``1 <= stride <= budget``."""
    if budget < 1:
        raise ValueError("max_len leaves no room for tokens in a chunk (budget %d)" % budget)
    if stride is None:
        return budget
    if not 1 <= int(stride) <= budget:
        raise ValueError("%s must be between 1 and the %d pieces a chunk holds, got %r"
                         % (what, budget, stride))
    return int(stride)


def check_chunk_caps(max_chunks: int, max_chunks_per_batch: int) -> int:
    """The rows-per-batch cap after checking ``1 <= max_chunks <= max_chunks_per_batch``."""
    if int(max_chunks) < 1:
        raise ValueError("max_chunks must be >= 1, got %r" % (max_chunks,))
    if int(max_chunks_per_batch) < int(max_chunks):
        raise ValueError("max_chunks_per_batch=%r must be >= max_chunks=%r (a document's chunks stay in "
                         "one batch)" % (max_chunks_per_batch, max_chunks))
    return int(max_chunks_per_batch)


def chunk_spans(length: int, budget: int, stride: Optional[int] = None,
                max_chunks: Optional[int] = None) -> List[Span]:
    """Spans of ``budget`` pieces starting every ``stride`` pieces until the end is covered.

    The last span ends at ``length``; an empty input gives one empty span. With ``max_chunks``,
    only the first ``max_chunks`` spans are kept (the document is cut after them).
    """
    stride = check_stride(stride, budget)
    spans: List[Span] = []
    start = 0
    while True:
        end = min(start + budget, length)
        spans.append((start, end))
        if end >= length:
            break
        start += stride
    return spans[:max_chunks] if max_chunks is not None else spans


def word_windows(word_lengths: Sequence[int], budget: int, stride: Optional[int] = None,
                 max_windows: Optional[int] = None) -> List[Span]:
    """Windows ``[first_word, end_word)`` of whole words holding at most ``budget`` pieces.

    A window starts at the first word beginning at least ``stride`` pieces after the previous
    window's start (never after that window's end, so no word is skipped). A single word longer
    than ``budget`` gets a window of its own (its pieces are cut by the reader).
    """
    stride = check_stride(stride, budget, "window_stride")
    offsets = [0]
    for n in word_lengths:
        offsets.append(offsets[-1] + n)
    num_words = len(word_lengths)
    windows: List[Span] = []
    first = 0
    while True:
        end = first
        while end < num_words and offsets[end + 1] - offsets[first] <= budget:
            end += 1
        end = max(end, first + 1) if num_words else 0
        windows.append((first, end))
        if end >= num_words:
            break
        following = first + 1
        while following < end and offsets[following] - offsets[first] < stride:
            following += 1
        first = following
    return windows[:max_windows] if max_windows is not None else windows


def most_central_window(windows: Sequence[Span], word_lengths: Sequence[int]) -> List[Tuple[int, int]]:
    """For each word, ``(window, slot)``: the window where the word is most central and the word's
    position inside it.

    Centrality is the distance, in pieces, from the word to the nearer edge of the window; ties go
    to the earlier window. Words in no window (cut by ``max_windows``) get ``(-1, -1)``.
    """
    offsets = [0]
    for n in word_lengths:
        offsets.append(offsets[-1] + n)
    best: List[Tuple[int, int]] = [(-1, -1)] * len(word_lengths)
    score = [-1] * len(word_lengths)
    for k, (first, end) in enumerate(windows):
        for w in range(first, end):
            centrality = min(offsets[w] - offsets[first], offsets[end] - offsets[w + 1])
            if centrality > score[w]:
                score[w], best[w] = centrality, (k, w - first)
    return best
