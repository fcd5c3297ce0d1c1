"""MaskLMReader: raw text for masked-language-model training, with dynamic masking per batch.

Input: PALM's TSV with ``text_a`` (optionally ``text_b``), CSV/JSONL with the same fields, or
``file_format='txt'`` with one text per line (blank lines skipped). Text is tokenized once;
masks are drawn in :meth:`MaskLMReader.collate` from the batch's seeded ``rng``, so each epoch
sees new masks while a resumed run sees the same ones.

Batched fields: ``input_ids`` (masked), ``token_type_ids``, ``mlm_mask`` (1 where the model
predicts) and ``mlm_labels`` (the original id there, -100 elsewhere and where unknown). A text
that already contains the mask token (``[MASK]``) is left as it is: its mask positions are
predicted and carry no label -- the way to ask a trained model to fill in blanks.

``whole_word_mask=True`` masks whole words (Cui et al. 2019; NEZHA and BERT-wwm were pre-trained
so): a WordPiece ``##`` continuation (byte-level BPE: a piece without the leading-space marker)
is chosen, and replaced 80/10/10, together with the piece it continues. Words are drawn until
about ``mask_prob`` of the tokens are covered; a word that would overshoot is skipped. Chinese
text is one character per WordPiece token, so there each character is its own word (word
segmentation of Chinese is not done here).

Canine's code points (``tokenizer='codepoint'``) are refused: a masked-LM head predicts over an
output vocabulary, and Canine has none (1,114,112 code points, hashed embeddings).
"""
from typing import List, Optional

import numpy as np

from paddlepalm.reader.base import Example, Reader
from paddlepalm.reader.batching import Batch, Feature
from paddlepalm.reader.formats import _lines
from paddlepalm.tokenizer.tokenizer import Pieces

REPLACE_WITH_MASK, REPLACE_WITH_RANDOM = 0.8, 0.1  # the rest of the chosen tokens stay unchanged


class MaskLMReader(Reader):
    """Masked LM: choose ``mask_prob`` of the non-special tokens of every row (at least one);
    of those 80% become the mask token, 10% a random non-special token, 10% stay."""

    name = "mask_lm"
    required_fields = ("text_a",)
    predict_optional_fields = ()

    def __init__(self, vocab_path=None, max_len: int = 128, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 phase: str = "train", mask_prob: float = 0.15, whole_word_mask: bool = False, **kwargs):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        if not 0.0 < mask_prob < 1.0:
            raise ValueError("mask_prob must be in (0, 1), got %r" % (mask_prob,))
        tok = self.tokenizer
        if not tok.supports_mask_lm:
            raise ValueError("MaskLMReader: masked LM is not supported with %s: there is no output "
                             "vocabulary to predict over (Canine embeds 1,114,112 code points by hashing). "
                             "Use Canine for classification, matching, sequence labelling or MRC"
                             % type(tok).__name__)
        if tok.mask_id is None:
            raise ValueError("the vocabulary has no mask token; MaskLMReader needs one")
        self.mask_prob = mask_prob
        self.whole_word_mask = bool(whole_word_mask)
        self._continues = tok.continuation_flags() if self.whole_word_mask else None
        self.mask_token = tok.convert_ids_to_tokens([tok.mask_id])[0]
        self.special_ids = np.array(sorted({tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id, tok.mask_id}))
        self.random_ids = np.setdiff1d(np.arange(tok.vocab_size), self.special_ids)

    # ------------------------------------------------------------------ reading
    def read_examples(self, input_file: str, file_format: str = "tsv") -> List[Example]:
        if file_format != "txt":
            return super().read_examples(input_file, file_format)
        return [{"text_a": line, "_file": input_file, "_line": lineno}
                for lineno, line in _lines(input_file) if line.strip()]

    def to_features_batch(self, examples: List[Example]) -> List[Feature]:
        has_b = any(e.get("text_b") not in (None, "") for e in examples)
        texts_a = [self._pieces_with_masks(str(e["text_a"])) for e in examples]
        segments_a = self.tokenizer.pieces_batch([s for parts in texts_a for s in parts])
        if has_b:
            texts_b = [self._pieces_with_masks(str(e.get("text_b") or "")) for e in examples]
            segments_b = self.tokenizer.pieces_batch([s for parts in texts_b for s in parts])
        features, pos_a, pos_b = [], 0, 0
        for k in range(len(examples)):
            a, pos_a = _join_with_mask(segments_a, pos_a, len(texts_a[k]), self.tokenizer.mask_id)
            b = None
            if has_b:
                b, pos_b = _join_with_mask(segments_b, pos_b, len(texts_b[k]), self.tokenizer.mask_id)
            enc = self.tokenizer.fit(a, b, self.max_len, self.truncation)
            features.append({"input_ids": enc.ids, "token_type_ids": enc.type_ids})
        return features

    def to_features(self, example: Example) -> Feature:
        return self.to_features_batch([example])[0]

    def _pieces_with_masks(self, text: str) -> List[str]:
        """The text split around literal mask tokens (so they map to the mask id)."""
        return text.split(self.mask_token)

    # ------------------------------------------------------------------ dynamic masking
    def collate(self, features: List[Feature], rng: np.random.Generator) -> Batch:
        rows = [self.mask_row(np.asarray(f["input_ids"], dtype=np.int64), rng) for f in features]
        masked = [{**f, "input_ids": ids, "mlm_mask": mask, "mlm_labels": labels}
                  for f, (ids, mask, labels) in zip(features, rows)]
        return super().collate(masked, rng)

    def mask_row(self, ids: np.ndarray, rng: np.random.Generator):
        """``(input_ids, mlm_mask, mlm_labels)`` for one row; the cached ids are not modified."""
        labels = np.full(len(ids), -100, dtype=np.int64)
        given = ids == self.tokenizer.mask_id
        if given.any():
            return ids, given.astype(np.int64), labels
        candidates = np.flatnonzero(~np.isin(ids, self.special_ids))
        if len(candidates) == 0:
            return ids, np.zeros(len(ids), dtype=np.int64), labels
        # stochastic rounding: the expected count is exactly mask_prob * len(candidates)
        count = max(1, min(len(candidates), int(self.mask_prob * len(candidates) + rng.random())))
        if self.whole_word_mask:
            return self._mask_words(ids, candidates, count, rng, labels)
        chosen = np.sort(rng.choice(candidates, size=count, replace=False))
        labels[chosen] = ids[chosen]
        out = ids.copy()
        draw = rng.random(count)
        to_mask = chosen[draw < REPLACE_WITH_MASK]
        to_random = chosen[(draw >= REPLACE_WITH_MASK) & (draw < REPLACE_WITH_MASK + REPLACE_WITH_RANDOM)]
        out[to_mask] = self.tokenizer.mask_id
        out[to_random] = rng.choice(self.random_ids, size=len(to_random))
        mask = np.zeros(len(ids), dtype=np.int64)
        mask[chosen] = 1
        return out, mask, labels

    def _mask_words(self, ids: np.ndarray, candidates: np.ndarray, count: int,
                    rng: np.random.Generator, labels: np.ndarray):
        """Whole-word masking: words (a piece and its continuations) until ~``count`` pieces."""
        words = word_spans(candidates, self._continues[np.clip(ids[candidates], 0, len(self._continues) - 1)])
        chosen_words, covered = [], 0
        for w in rng.permutation(len(words)):
            size = len(words[w])
            if covered and covered + size > count:
                continue
            chosen_words.append(words[w])
            covered += size
            if covered >= count:
                break
        out, mask = ids.copy(), np.zeros(len(ids), dtype=np.int64)
        draw = rng.random(len(chosen_words))
        for word, d in zip(chosen_words, draw):
            labels[word] = ids[word]
            mask[word] = 1
            if d < REPLACE_WITH_MASK:
                out[word] = self.tokenizer.mask_id
            elif d < REPLACE_WITH_MASK + REPLACE_WITH_RANDOM:
                out[word] = rng.choice(self.random_ids, size=len(word))
        return out, mask, labels

    @property
    def outputs_attr(self):
        attrs = super().outputs_attr
        attrs.update(mlm_mask=[[-1, -1], "int64"], mlm_labels=[[-1, -1], "int64"])
        return attrs


def word_spans(positions: np.ndarray, continues: np.ndarray) -> List[np.ndarray]:
    """Group ``positions`` (sorted) into words: a position continues the word before it when its
    piece is a continuation and it directly follows that word's last position."""
    words: List[List[int]] = []
    for pos, cont in zip(positions.tolist(), continues.tolist()):
        if cont and words and words[-1][-1] == pos - 1:
            words[-1].append(pos)
        else:
            words.append([pos])
    return [np.array(w, dtype=np.int64) for w in words]


def _join_with_mask(segments: List[Pieces], start: int, count: int, mask_id: int):
    """Concatenate ``count`` piece segments from ``start`` with a mask id between each two."""
    ids, offsets = [], []
    for n, seg in enumerate(segments[start:start + count]):
        if n:
            ids.append(mask_id)
            offsets.append((0, 0))
        ids += seg.ids
        offsets += seg.offsets
    return Pieces(ids, offsets, []), start + count
