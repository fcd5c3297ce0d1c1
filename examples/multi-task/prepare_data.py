#!/usr/bin/env python
"""Write the files ``config.yaml`` reads: the SNIPS split as PALM TSVs and the MiniLM weights.

    python examples/multi-task/prepare_data.py          # then:
    paddlepalm train examples/multi-task/config.yaml

Into ``examples/multi-task/data/`` (or ``--dest``): ``palm/{intent,slot}_{train,dev,test}.tsv``,
``palm/intent_labels.json``, ``palm/slot_label_map.json`` -- the same files ``run.py`` writes
into its output dir -- and ``all-MiniLM-L6-v2/``, a link to (or a copy of) the converted weights.
The SNIPS JSON files are found like ``run.py`` finds them (``--data-dir``, ``$PADDLEPALM_DATA``,
this folder's ``data/``).
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _common as common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def prepare(dest: str, data_dir=None, pretrained=None, seed: int = 0, limit=None) -> dict:
    info = common.prepare_snips(common.find_snips(data_dir), os.path.join(dest, "palm"), seed=seed, limit=limit)
    weights = common.pretrained_dir(pretrained)
    link = os.path.join(dest, common.MINILM_NAME)
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    try:
        os.symlink(os.path.abspath(weights), link, target_is_directory=True)
    except (OSError, NotImplementedError):  # no symlinks (e.g. Windows without privileges)
        shutil.copytree(weights, link)
    info["pretrained"] = link
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", default=os.path.join(HERE, "data"), help="default: %(default)s")
    parser.add_argument("--data-dir", help="folder with the SNIPS JSON files")
    parser.add_argument("--pretrained", help="encoder checkpoint (default: the MiniLM package's weights)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="at most N utterances per split (smoke tests)")
    args = parser.parse_args(argv)
    info = prepare(args.dest, args.data_dir, args.pretrained, args.split_seed, args.limit)
    print("wrote %s (%s) and %s" % (os.path.join(args.dest, "palm"),
                                    ", ".join("%s %d" % kv for kv in info["sizes"].items()), info["pretrained"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
