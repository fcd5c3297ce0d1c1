"""What every tokenizer gives the readers: pieces with offsets, special tokens, truncation.

Readers only talk to this interface, so a tokenizer without a vocabulary (Canine's code points,
:mod:`paddlepalm.tokenizer.codepoint`) serves every reader as the sub-word one does. A subclass
provides ``pieces``/``pieces_batch``/``word_pieces_batch`` and the special ids; assembling
(``[CLS] a [SEP] b [SEP]``), truncation and ``encode`` are shared here.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from paddlepalm.tokenizer.truncation import keep_indices, pair_budgets

Offsets = List[Tuple[int, int]]


@dataclass
class Pieces:
    """Sub-word pieces of one text (no special tokens)."""

    ids: List[int]
    offsets: Offsets  # character spans in the text (or in the word, for pre-split input)
    word_ids: List[Optional[int]] = field(default_factory=list)


@dataclass
class Encoded:
    """Model inputs for one example: ids with special tokens, token types, offsets, word ids."""

    ids: List[int]
    type_ids: List[int]
    offsets: Offsets  # (0, 0) for special tokens
    word_ids: List[Optional[int]]  # None for special tokens
    sequence_ids: List[Optional[int]]  # 0 for text_a, 1 for text_b, None for specials

    def __len__(self):
        return len(self.ids)


class BaseTokenizer:
    """The tokenizer interface readers use. Subclasses set the special ids and the piece methods."""

    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    mask_id: Optional[int]
    files: Tuple[str, ...] = ()
    sep_between_pair: int = 1  # BERT: one [SEP] between a and b; RoBERTa: </s></s>
    pair_type_ids: bool = True  # BERT: b gets token type 1; RoBERTa: all 0
    is_bpe: bool = False
    supports_mask_lm: bool = True  # False where a masked-LM head has no output table (code points)

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def pieces(self, text: str) -> Pieces:
        raise NotImplementedError

    def pieces_batch(self, texts: Sequence[str]) -> List[Pieces]:
        return [self.pieces(t) for t in texts]

    def word_pieces_batch(self, sentences: Sequence[Sequence[str]]) -> List[Pieces]:
        """Pre-split words -> pieces with ``word_ids`` (index of the word each piece came from)."""
        raise NotImplementedError

    def continuation_flags(self):
        """Per id: True where a piece continues the previous word (for whole-word masking)."""
        raise NotImplementedError("%s has no sub-word continuations" % type(self).__name__)

    def save(self, path: str) -> List[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ assembling
    def build(self, a: Pieces, b: Optional[Pieces] = None) -> Encoded:
        """Add special tokens around one or two piece sequences."""
        ids = [self.cls_id] + a.ids + [self.sep_id]
        types = [0] * len(ids)
        offsets = [(0, 0)] + list(a.offsets) + [(0, 0)]
        words = [None] + list(a.word_ids or [None] * len(a.ids)) + [None]
        seqs = [None] + [0] * len(a.ids) + [None]
        if b is not None:
            extra_sep = [self.sep_id] * (self.sep_between_pair - 1)
            b_type = 1 if self.pair_type_ids else 0
            ids += extra_sep + b.ids + [self.sep_id]
            types += [b_type] * len(extra_sep) + [b_type] * (len(b.ids) + 1)
            offsets += [(0, 0)] * len(extra_sep) + list(b.offsets) + [(0, 0)]
            words += [None] * len(extra_sep) + list(b.word_ids or [None] * len(b.ids)) + [None]
            seqs += [None] * len(extra_sep) + [1] * len(b.ids) + [None]
        return Encoded(ids, types, offsets, words, seqs)

    def special_count(self, pair: bool) -> int:
        return 2 + (self.sep_between_pair if pair else 0)

    def fit(self, a: Pieces, b: Optional[Pieces], max_len: Optional[int],
            truncation: str = "head") -> Encoded:
        """Truncate (longest-first for pairs, then ``truncation`` per side) and build."""
        if max_len is not None:
            budget = max_len - self.special_count(b is not None)
            if budget < 1:
                raise ValueError("max_len=%d leaves no room for tokens" % max_len)
            len_a, len_b = pair_budgets(len(a.ids), None if b is None else len(b.ids), budget)
            a = _select(a, keep_indices(len(a.ids), len_a, truncation))
            if b is not None:
                b = _select(b, keep_indices(len(b.ids), len_b, truncation))
        return self.build(a, b)

    def encode(self, text: str, text_pair: Optional[str] = None, max_len: Optional[int] = None,
               truncation: str = "head") -> Encoded:
        a = self.pieces(text)
        b = self.pieces(text_pair) if text_pair is not None else None
        return self.fit(a, b, max_len, truncation)

    def encode_batch(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None,
                     max_len: Optional[int] = None, truncation: str = "head") -> List[Encoded]:
        a = self.pieces_batch(texts)
        b = self.pieces_batch(pairs) if pairs is not None else [None] * len(a)
        return [self.fit(x, y, max_len, truncation) for x, y in zip(a, b)]


def _select(p: Pieces, keep: List[int]) -> Pieces:
    return Pieces([p.ids[i] for i in keep], [p.offsets[i] for i in keep],
                  [p.word_ids[i] for i in keep] if p.word_ids else [])
