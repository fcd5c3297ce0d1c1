"""WNUT-17 (emerging and rare entities, Derczynski et al. 2017): CoNLL files read as they are.

Files of https://github.com/leondz/emerging_entities_17: train ``wnut17train.conll`` (3,394
tweets), dev ``emerging.dev.conll`` (1,009), test ``emerging.test.annotated`` (1,287).
"""
import os
from typing import Any, Dict, Optional

from paddlepalm.datasets.conll import limit_conll
from paddlepalm.datasets.locate import find_data, has_files

WNUT17_FILES = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
WNUT17_HOW_TO_GET = ("Get the WNUT-17 CoNLL files (%s) from https://github.com/leondz/emerging_entities_17 and "
                     "point --data-dir (or $PADDLEPALM_DATA/wnut17) at their folder."
                     % ", ".join(WNUT17_FILES.values()))


def find_wnut17(data_dir: Optional[str], local_dir: Optional[str] = None) -> str:
    """The WNUT-17 folder (see :func:`paddlepalm.datasets.locate.find_data`)."""
    return find_data("wnut17", data_dir, local_dir, has_files(*WNUT17_FILES.values()), WNUT17_HOW_TO_GET)


def wnut17_readers(data_dir: str, pretrained: str, max_len: int, batch_size: int, seed: int,
                   limit: Optional[int], work_dir: str) -> Dict[str, Any]:
    """Train/dev/test ``SequenceLabelReader``s over the WNUT-17 CoNLL files, read as they are.

    All three use the tags of the full training file (``O`` first, then sorted), so a ``limit``-ed
    subset (sentences drawn with ``seed``, written under ``work_dir``) keeps the label map. Dev
    and test are batched by 64.
    """
    from paddlepalm.reader import SequenceLabelReader

    full_train = os.path.join(data_dir, WNUT17_FILES["train"])
    tags = sorted({t for e in SequenceLabelReader(pretrained).read_examples(full_train, "conll")
                   for t in e["tags"]} - {"O"})
    train = SequenceLabelReader(pretrained, max_len, label_map_config=["O"] + tags, seed=seed,
                                bucket_by_length=True)
    readers = {}
    for split, name in WNUT17_FILES.items():
        path = limit_conll(os.path.join(data_dir, name), limit, os.path.join(work_dir, split + ".conll"), seed)
        reader = train if split == "train" else train.clone(split)
        readers[split] = reader.load_data(path, batch_size if split == "train" else 64, file_format="conll")
    return readers
