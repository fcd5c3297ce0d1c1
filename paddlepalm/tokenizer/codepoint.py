"""Canine's input path: text -> Unicode code points, no vocabulary, no unknown tokens.

Each character is one piece whose id is its code point and whose offsets are exact character
spans; special tokens are code points of the Private Use Area, as in Canine's release
(``[CLS]`` U+E000, ``[SEP]`` U+E001, ``[MASK]`` U+E003, padding U+0000). Pre-split words (sequence
labelling) are joined by one space, which belongs to the word before it, so each word's first
piece is its first character; no space is put between two words that both border on a script
written without spaces (CJK, kana, Thai ...), so Chinese characters given one per word read as
the running text they came from.
"""
import json
import os
import unicodedata
from typing import List, Optional, Sequence

from paddlepalm.tokenizer.base import BaseTokenizer, Pieces

CLS, SEP, BOS, MASK, RESERVED, PAD = 0xE000, 0xE001, 0xE002, 0xE003, 0xE004, 0
SPECIAL_NAMES = {CLS: "[CLS]", SEP: "[SEP]", BOS: "[BOS]", MASK: "[MASK]", PAD: "[PAD]", RESERVED: "[RESERVED]"}
UNICODE_SIZE = 0x110000
TOKENIZER_CLASS = "CanineTokenizer"
MODEL_MAX_LENGTH = 2048

# scripts written without spaces between words: (first, last) code point
_NO_SPACE_RANGES = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x2E80, 0x2FDF),
                    (0x3000, 0x30FF), (0x3100, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
                    (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF))


def _no_space(char: str) -> bool:
    cp = ord(char)
    return any(a <= cp <= b for a, b in _NO_SPACE_RANGES) or (
        cp >= 0x3000 and unicodedata.category(char).startswith("P"))


class CodepointTokenizer(BaseTokenizer):
    """Tokenizer-free input for Canine: ``ids`` are code points, one per character."""

    cls_id, sep_id, pad_id, mask_id = CLS, SEP, PAD, MASK
    unk_id = PAD  # nothing is ever unknown; readers that ask for an 'unknown' id get padding
    supports_mask_lm = False  # Canine has no output table over 1.1M code points (see MaskLMReader)
    files = ()

    def __init__(self, model_max_length: int = MODEL_MAX_LENGTH):
        self.model_max_length = int(model_max_length)

    @classmethod
    def from_pretrained(cls, path: str) -> "CodepointTokenizer":
        config = _read_json(os.path.join(path, "tokenizer_config.json"))
        return cls(config.get("model_max_length", MODEL_MAX_LENGTH))

    @property
    def vocab_size(self) -> int:
        return UNICODE_SIZE

    # ------------------------------------------------------------------ pieces
    def pieces(self, text: str) -> Pieces:
        ids = [ord(c) for c in text]
        word_ids: List[Optional[int]] = []
        word = -1
        for k, c in enumerate(text):
            if c.isspace():
                word_ids.append(None)
                continue
            if k == 0 or text[k - 1].isspace():
                word += 1
            word_ids.append(word)
        return Pieces(ids, [(k, k + 1) for k in range(len(text))], word_ids)

    def word_pieces_batch(self, sentences: Sequence[Sequence[str]]) -> List[Pieces]:
        out = []
        for words in sentences:
            ids: List[int] = []
            offsets, word_ids = [], []
            for w, word in enumerate(words):
                ids += [ord(c) for c in word]
                offsets += [(k, k + 1) for k in range(len(word))]
                word_ids += [w] * len(word)
                following = words[w + 1] if w + 1 < len(words) else None
                if following and not (word and _no_space(word[-1]) and _no_space(following[0])):
                    ids.append(ord(" "))
                    offsets.append((len(word), len(word) + 1))
                    word_ids.append(w)
            out.append(Pieces(ids, offsets, word_ids))
        return out

    def tokenize(self, text: str) -> List[str]:
        return list(text)

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> List[int]:
        by_name = {v: k for k, v in SPECIAL_NAMES.items()}
        return [by_name[t] if t in by_name else ord(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
        return [SPECIAL_NAMES.get(int(i), chr(int(i))) for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(int(i)) for i in ids if int(i) not in SPECIAL_NAMES)

    def save(self, path: str) -> List[str]:
        """Write a Hugging Face compatible ``tokenizer_config.json`` (there is no vocabulary)."""
        os.makedirs(path, exist_ok=True)
        target = os.path.join(path, "tokenizer_config.json")
        with open(target, "w", encoding="utf-8") as f:
            json.dump({"tokenizer_class": TOKENIZER_CLASS, "model_max_length": self.model_max_length},
                      f, indent=2)
        return [target]


def is_codepoint_checkpoint(path: str, tokenizer_config: Optional[dict] = None) -> bool:
    """True for a Canine checkpoint dir (by its tokenizer class or its model config)."""
    config = tokenizer_config if tokenizer_config is not None else \
        _read_json(os.path.join(path, "tokenizer_config.json"))
    if config.get("tokenizer_class") == TOKENIZER_CLASS:
        return True
    for name in ("paddlepalm_config.json", "config.json"):
        model = _read_json(os.path.join(path, name))
        if model:
            return model.get("model_type") == "canine"
    return False


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
