"""Tokenization on the ``tokenizers`` library: WordPiece, byte-level BPE, truncation, offsets."""
from paddlepalm.tokenizer.tokenizer import Encoded, Pieces, Tokenizer, read_vocab_txt
from paddlepalm.tokenizer.truncation import STRATEGIES, keep_indices, pair_budgets, truncate


def from_pretrained(path: str, do_lower_case=None) -> Tokenizer:
    """Load the tokenizer stored in a checkpoint directory."""
    return Tokenizer.from_pretrained(path, do_lower_case=do_lower_case)


__all__ = ["Tokenizer", "Encoded", "Pieces", "read_vocab_txt", "from_pretrained", "STRATEGIES",
           "keep_indices", "pair_budgets", "truncate"]
