"""Tokenizers for the BERT family, on the Hugging Face ``tokenizers`` library (Rust).

* WordPiece from ``vocab.txt`` (BERT/ERNIE; cased or uncased; CJK characters split apart; ERNIE's
  ``token<TAB>id`` vocab files are read too).
* Byte-level BPE from ``vocab.json`` + ``merges.txt`` (RoBERTa).
* Any ``tokenizer.json`` (its normalizer and pre-tokenizer are used as they are).

Special tokens are added here, after truncation, so one truncation path serves every family.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from tokenizers import Tokenizer as _Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from paddlepalm.errors import CheckpointError
from paddlepalm.tokenizer.base import BaseTokenizer, Encoded, Offsets, Pieces  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class _Specials:
    cls: str
    sep: str
    pad: str
    unk: str
    mask: str
    sep_between_pair: int  # BERT: [SEP] once between a and b; RoBERTa: </s></s>
    pair_type_ids: bool  # BERT: b gets token type 1; RoBERTa: all 0


WORDPIECE_SPECIALS = _Specials("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", 1, True)
BPE_SPECIALS = _Specials("<s>", "</s>", "<pad>", "<unk>", "<mask>", 2, False)


def read_vocab_txt(path: str) -> Dict[str, int]:
    """Read a WordPiece vocab: one token a line, or ERNIE's ``token<TAB>id`` lines."""
    vocab: Dict[str, int] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                token = line.rstrip("\n").rstrip("\r")
                if "\t" in token:
                    token, _, idx = token.partition("\t")
                    try:
                        vocab[token] = int(idx)
                    except ValueError:
                        raise CheckpointError("%s: line %d: expected 'token<TAB>id', got %r"
                                              % (path, lineno, line.rstrip())) from None
                elif token not in vocab:
                    vocab[token] = len(vocab)
    except FileNotFoundError:
        raise CheckpointError("%s: vocab file not found" % path) from None
    except UnicodeDecodeError as e:
        raise CheckpointError("%s: not UTF-8 (byte %d)" % (path, e.start)) from None
    if not vocab:
        raise CheckpointError("%s: empty vocab file" % path)
    return vocab


class Tokenizer(BaseTokenizer):
    """Sub-word tokenizer with pair handling, truncation strategies and offsets."""

    def __init__(self, backend: _Backend, specials: _Specials, files: Sequence[str] = ()):
        backend.no_truncation()
        backend.no_padding()
        backend.post_processor = None if specials is WORDPIECE_SPECIALS else \
            processors.ByteLevel(trim_offsets=True)
        self._backend = backend
        self._specials = specials
        self.files = tuple(files)
        ids = {}
        for name in ("cls", "sep", "pad", "unk", "mask"):
            token = getattr(specials, name)
            idx = backend.token_to_id(token)
            if idx is None and name != "mask":
                raise CheckpointError("%s: special token %r is not in the vocabulary"
                                      % (", ".join(files) or "tokenizer", token))
            ids[name] = idx
        self.cls_id, self.sep_id, self.pad_id = ids["cls"], ids["sep"], ids["pad"]
        self.unk_id, self.mask_id = ids["unk"], ids["mask"]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_vocab(cls, vocab_path: str, do_lower_case: bool = True,
                   strip_accents: Optional[bool] = None) -> "Tokenizer":
        """WordPiece from ``vocab.txt``. Uncased also strips accents (BERT's convention)."""
        vocab = read_vocab_txt(vocab_path)
        unk = "[UNK]" if "[UNK]" in vocab else next(iter(vocab))
        backend = _Backend(models.WordPiece(vocab=vocab, unk_token=unk, max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
            lowercase=do_lower_case)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        return cls(backend, WORDPIECE_SPECIALS, files=[vocab_path])

    @classmethod
    def from_bpe(cls, vocab_json: str, merges_txt: str, add_prefix_space: bool = False) -> "Tokenizer":
        """Byte-level BPE (RoBERTa/GPT-2 style) from ``vocab.json`` + ``merges.txt``."""
        for path in (vocab_json, merges_txt):
            if not os.path.isfile(path):
                raise CheckpointError("%s: file not found" % path)
        backend = _Backend(models.BPE.from_file(vocab_json, merges_txt))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
        backend.decoder = decoders.ByteLevel()
        return cls(backend, BPE_SPECIALS, files=[vocab_json, merges_txt])

    @classmethod
    def from_file(cls, tokenizer_json: str) -> "Tokenizer":
        """Any ``tokenizer.json``; the family is recognised by its model (WordPiece or BPE)."""
        try:
            backend = _Backend.from_file(tokenizer_json)
        except Exception as e:  # the Rust side raises a plain Exception
            raise CheckpointError("%s: cannot read tokenizer: %s" % (tokenizer_json, e)) from None
        specials = BPE_SPECIALS if isinstance(backend.model, models.BPE) else WORDPIECE_SPECIALS
        return cls(backend, specials, files=[tokenizer_json])

    @classmethod
    def from_pretrained(cls, path: str, do_lower_case: Optional[bool] = None) -> BaseTokenizer:
        """Load from a checkpoint dir: tokenizer.json, else vocab.txt, else vocab.json+merges.txt;
        a Canine checkpoint gets the :class:`~paddlepalm.tokenizer.codepoint.CodepointTokenizer`.

        ``do_lower_case`` defaults to ``tokenizer_config.json``'s setting, else True. Passing it
        explicitly rebuilds from vocab.txt so the choice is honoured.
        """
        def p(name):
            return os.path.join(path, name)

        config = {}
        if os.path.isfile(p("tokenizer_config.json")):
            with open(p("tokenizer_config.json"), encoding="utf-8") as f:
                config = json.load(f)
        from paddlepalm.tokenizer.codepoint import CodepointTokenizer, is_codepoint_checkpoint

        if is_codepoint_checkpoint(path, config):
            return CodepointTokenizer.from_pretrained(path)
        extra = [p(n) for n in ("tokenizer_config.json",) if os.path.isfile(p(n))]
        if os.path.isfile(p("tokenizer.json")) and do_lower_case is None:
            tok = cls.from_file(p("tokenizer.json"))
            # keep vocab.txt next to it: readers and PALM scripts still ask for vocab_path
            tok.files = tuple(f for f in [p("tokenizer.json"), p("vocab.txt")] if os.path.isfile(f)) + tuple(extra)
            return tok
        if os.path.isfile(p("vocab.txt")):
            lower = do_lower_case if do_lower_case is not None else config.get("do_lower_case", True)
            tok = cls.from_vocab(p("vocab.txt"), do_lower_case=lower,
                                 strip_accents=config.get("strip_accents"))
            tok.files += tuple(extra)
            return tok
        if os.path.isfile(p("vocab.json")) and os.path.isfile(p("merges.txt")):
            tok = cls.from_bpe(p("vocab.json"), p("merges.txt"),
                               add_prefix_space=config.get("add_prefix_space", False))
            tok.files += tuple(extra)
            return tok
        raise CheckpointError("%s: no tokenizer files (tokenizer.json, vocab.txt, or "
                              "vocab.json + merges.txt)" % path)

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    @property
    def is_bpe(self) -> bool:
        return self._specials is BPE_SPECIALS

    @property
    def sep_between_pair(self) -> int:
        return self._specials.sep_between_pair

    @property
    def pair_type_ids(self) -> bool:
        return self._specials.pair_type_ids

    def continuation_flags(self):
        """Per vocabulary id: True for a piece that continues the previous word (WordPiece ``##x``;
        byte-level BPE: a piece without the leading-space marker ``Ġ``). Special tokens: False."""
        import numpy as np

        flags = np.zeros(self.vocab_size, dtype=bool)
        specials = {self.cls_id, self.sep_id, self.pad_id, self.unk_id, self.mask_id}
        for token, idx in self._backend.get_vocab(with_added_tokens=True).items():
            if idx in specials or idx >= len(flags):
                continue
            flags[idx] = (not token.startswith("\u0120") and not token.startswith("<")) if self.is_bpe \
                else token.startswith("##")
        return flags

    # ------------------------------------------------------------------ pieces
    def pieces(self, text: str) -> Pieces:
        enc = self._backend.encode(text, add_special_tokens=False)
        return Pieces(list(enc.ids), [tuple(o) for o in enc.offsets], list(enc.word_ids))

    def pieces_batch(self, texts: Sequence[str]) -> List[Pieces]:
        encs = self._backend.encode_batch(list(texts), add_special_tokens=False)
        return [Pieces(list(e.ids), [tuple(o) for o in e.offsets], list(e.word_ids)) for e in encs]

    def word_pieces_batch(self, sentences: Sequence[Sequence[str]]) -> List[Pieces]:
        """Pre-split words -> pieces with ``word_ids`` (index of the word each piece came from)."""
        encs = self._backend.encode_batch([list(s) for s in sentences], is_pretokenized=True,
                                          add_special_tokens=False)
        return [Pieces(list(e.ids), [tuple(o) for o in e.offsets], list(e.word_ids)) for e in encs]

    def tokenize(self, text: str) -> List[str]:
        return list(self._backend.encode(text, add_special_tokens=False).tokens)

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> List[int]:
        return [self._backend.token_to_id(t) if self._backend.token_to_id(t) is not None
                else self.unk_id for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
        return [self._backend.id_to_token(int(i)) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self._backend.decode([int(i) for i in ids])

    def save(self, path: str) -> List[str]:
        """Write ``tokenizer.json`` (plus the original vocab files) into ``path``."""
        import shutil

        os.makedirs(path, exist_ok=True)
        written = [os.path.join(path, "tokenizer.json")]
        self._backend.save(written[0])
        for f in self.files:
            if os.path.basename(f) != "tokenizer.json" and os.path.isfile(f):
                dst = os.path.join(path, os.path.basename(f))
                if os.path.abspath(f) != os.path.abspath(dst):
                    shutil.copy2(f, dst)
                written.append(dst)
        return written
