"""Deprecated location of the SNIPS loader: use :mod:`paddlepalm.datasets.snips`.

Kept so that ``from paddlepalm.reader.snips import load_snips`` (and the other names below) keeps
working; it re-exports the same objects and will be removed in a future major version.
"""
from paddlepalm.datasets.snips import (  # noqa: F401
    DATA_HINT,
    TOKEN_SEPARATOR,
    Piece,
    Utterance,
    decode_bytes,
    intent_label_list,
    load_snips,
    read_snips_file,
    slot_label_map,
    split_held_out,
    words_and_tags,
    write_palm_tsv,
)

__all__ = ["DATA_HINT", "TOKEN_SEPARATOR", "Piece", "Utterance", "decode_bytes", "intent_label_list",
           "load_snips", "read_snips_file", "slot_label_map", "split_held_out", "words_and_tags",
           "write_palm_tsv"]
