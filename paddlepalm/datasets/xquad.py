"""XQuAD (Artetxe et al. 2020; SQuAD v1.1 format): split by article into train and held-out files.

XQuAD is an evaluation set (240 paragraphs from 48 Wikipedia articles, 1,190 questions per
language, https://github.com/google-deepmind/xquad). Splitting by article keeps every held-out
paragraph unseen during training.
"""
import json
import os
from typing import Dict, Optional, Tuple

from paddlepalm.datasets.locate import find_data, has_files
from paddlepalm.datasets.subset import subsample
from paddlepalm.errors import DataError

XQUAD_EN_FILE = "xquad.en.json"
XQUAD_HOW_TO_GET = ("Get xquad.en.json from https://github.com/google-deepmind/xquad and point --data-dir "
                    "(or $PADDLEPALM_DATA/xquad) at its folder.")


def find_xquad(data_dir: Optional[str], local_dir: Optional[str] = None) -> str:
    """The folder holding ``xquad.en.json`` (see :func:`paddlepalm.datasets.locate.find_data`)."""
    return find_data("xquad", data_dir, local_dir, has_files(XQUAD_EN_FILE), XQUAD_HOW_TO_GET)


def split_articles(path: str, held_out: int, out_dir: str, limit: Optional[int] = None,
                   seed: int = 0) -> Tuple[Dict[str, str], Dict[str, int]]:
    """Write ``<out_dir>/train.json`` (all but the last ``held_out`` articles) and ``eval.json``.

    ``limit`` keeps at most that many questions in each (drawn with ``seed``; smoke tests).
    Returns ``({'train': path, 'eval': path}, {'train': questions, 'eval': questions})``. Raises
    ``ValueError`` unless ``0 < held_out < articles``, ``DataError`` (naming file and line) for a
    file that is not SQuAD JSON.
    """
    with open(path, encoding="utf-8") as f:
        try:
            dataset = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError("malformed JSON: %s" % e.msg, path=path, line=e.lineno) from None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise DataError("expected SQuAD v1.1 JSON, an object with a 'data' list of articles", path=path)
    articles = dataset["data"]
    if not 0 < held_out < len(articles):
        raise ValueError("held_out must be between 1 and %d (%s has %d articles)"
                         % (len(articles) - 1, path, len(articles)))
    os.makedirs(out_dir, exist_ok=True)
    files, counts = {}, {}
    for name, part in (("train", articles[:-held_out]), ("eval", articles[-held_out:])):
        if limit:
            keep = set(subsample([qa["id"] for a in part for p in a["paragraphs"] for qa in p["qas"]],
                                 limit, seed))
            part = [dict(a, paragraphs=[dict(p, qas=[q for q in p["qas"] if q["id"] in keep])
                                        for p in a["paragraphs"]]) for a in part]
        files[name] = os.path.join(out_dir, name + ".json")
        counts[name] = sum(len(p["qas"]) for a in part for p in a["paragraphs"])
        with open(files[name], "w", encoding="utf-8") as f:
            json.dump({"version": dataset.get("version", "1.1"), "data": part}, f, ensure_ascii=False)
    return files, counts
