"""Tokenization on the ``tokenizers`` library: WordPiece, byte-level BPE, truncation, offsets;
and Canine's tokenizer-free code points."""
from paddlepalm.tokenizer.base import BaseTokenizer, Encoded, Pieces
from paddlepalm.tokenizer.codepoint import CodepointTokenizer
from paddlepalm.tokenizer.tokenizer import Tokenizer, read_vocab_txt
from paddlepalm.tokenizer.truncation import STRATEGIES, keep_indices, pair_budgets, truncate


def from_pretrained(path: str, do_lower_case=None) -> BaseTokenizer:
    """Load the tokenizer stored in a checkpoint directory."""
    return Tokenizer.from_pretrained(path, do_lower_case=do_lower_case)


__all__ = ["Tokenizer", "BaseTokenizer", "CodepointTokenizer", "Encoded", "Pieces", "read_vocab_txt", "from_pretrained", "STRATEGIES",
           "keep_indices", "pair_budgets", "truncate"]
