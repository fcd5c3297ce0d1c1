"""SNIPS NLU benchmark 2017 (7 intents): JSON files -> word-level BIO slot tags + intent label.

Data: the folder ``2017-06-custom-intent-engines`` of https://github.com/sonos/nlu-benchmark (in
this project: ``../shared/datasets/snips``). Each ``train_<Intent>_full.json`` and
``validate_<Intent>.json`` holds ``{"<Intent>": [{"data": [{"text": ...}, {"text": ...,
"entity": <slot>}, ...]}, ...]}``; an utterance is the concatenation of its ``text`` pieces and a
piece with ``entity`` is the value of that slot.

Words and tags: the utterance is split on whitespace, and each word takes the slot of the piece
that covers its *first character*: ``B-<slot>`` if it is the first word starting in that piece,
``I-<slot>`` for later words starting in the same piece, ``O`` for words starting in a plain piece.
Pieces need not end at spaces: in "Put it onto fusion fest." the slot piece "fusion fest" is
followed by "." inside the word "fest.", which stays ``I-playlist``; "7" + "pm" glued into one word
"7pm" takes the tag of "7". When a slot's first word is glued to the word before ("add" +
"Los Angeles"), the slot's B- tag goes to its first word of its own ("Angeles"). A slot piece in
which no word starts (all glued to a word begun earlier, as "one pm" + "near") gets no tag: 3 of
the 37,542 slot values in the SNIPS files.

Encoding: files are read as UTF-8 (a BOM is dropped). Where that fails, UTF-8 whose characters
outside the Basic Multilingual Plane are written as two encoded surrogates (CESU-8, as in the
SNIPS ``train_PlayMusic_full.json``, whose pizza emoji is bytes ``ED A0 BC ED BD 95``) is joined
back into real characters; failing that the bytes are read as Windows-1252, then Latin-1.

Files for training: :func:`prepare_snips` writes the standard split as PALM TSV files (what the
SNIPS examples and their config.yaml read); :func:`find_snips` says where the JSON files are and
:mod:`paddlepalm.datasets.snips_download` fetches them.
"""
from __future__ import annotations

import bisect
import json
import os
import random
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlepalm.datasets.locate import find_data, has_files
from paddlepalm.datasets.subset import subsample
from paddlepalm.errors import DataError

TOKEN_SEPARATOR = "\x02"  # PALM 2.x joins the tokens and tags of one sequence with \x02
DATA_HINT = ("Get the SNIPS 2017 data from https://github.com/sonos/nlu-benchmark (folder "
             "2017-06-custom-intent-engines, files train_<Intent>_full.json and "
             "validate_<Intent>.json); in this project it lives in ../shared/datasets/snips.")

Piece = Tuple[str, Optional[str]]  # (text, slot or None)


@dataclass
class Utterance:
    """One SNIPS utterance: whitespace words, their BIO slot tags, the intent, and where from."""
    words: List[str]
    tags: List[str]
    intent: str
    source: str


def decode_bytes(raw: bytes) -> Tuple[str, str]:
    """Decode a text file's bytes; returns ``(text, encoding)`` (see the module docstring)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        with_surrogates = raw.decode("utf-8", "surrogatepass")
        return (with_surrogates.encode("utf-16-le", "surrogatepass").decode("utf-16-le"),
                "cesu-8")
    except UnicodeDecodeError:  # not UTF-8 at all, or a surrogate without its pair
        pass
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def words_and_tags(pieces: Sequence[Piece]) -> Tuple[List[str], List[str]]:
    """Whitespace words of the joined pieces and their BIO tags (first-character rule)."""
    text = "".join(piece_text for piece_text, _ in pieces)
    starts = []
    offset = 0
    for piece_text, _ in pieces:
        starts.append(offset)
        offset += len(piece_text)
    words, tags = [], []
    previous_piece = None
    for match in re.finditer(r"\S+", text):
        piece = bisect.bisect_right(starts, match.start()) - 1
        slot = pieces[piece][1]
        if slot is None:
            tags.append("O")
        else:
            tags.append(("I-" if piece == previous_piece else "B-") + slot)
        words.append(match.group())
        previous_piece = piece
    return words, tags


def _utterance_pieces(item, path: str, field: str) -> List[Piece]:
    if not isinstance(item, dict) or not isinstance(item.get("data"), list):
        raise DataError("expected an object with a 'data' list of pieces", path=path, field=field)
    pieces = []
    for index, piece in enumerate(item["data"]):
        where = "%s.data[%d]" % (field, index)
        if not isinstance(piece, dict) or not isinstance(piece.get("text"), str):
            raise DataError("expected a piece object with a string 'text'", path=path,
                            field=where)
        slot = piece.get("entity")
        if slot is not None and not (isinstance(slot, str) and re.fullmatch(r"[^\s\x02]+", slot)):
            raise DataError("'entity' must be a non-empty slot name without spaces, got %r"
                            % (slot,), path=path, field=where + ".entity")
        pieces.append((piece["text"], slot))
    return pieces


def _parse_json(path: str) -> object:
    with open(path, "rb") as f:
        text, _ = decode_bytes(f.read())
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError("malformed JSON: %s" % error.msg, path=path, line=error.lineno)


def read_snips_file(path: str) -> List[Utterance]:
    """Utterances of one SNIPS JSON file, in file order; ``source`` is ``'<path>#<index>'``."""
    path = str(path)
    document = _parse_json(path)
    if not isinstance(document, dict) or len(document) != 1:
        raise DataError("expected one object {\"<Intent>\": [utterances]}", path=path)
    (intent, items), = document.items()
    if not isinstance(items, list):
        raise DataError("expected a list of utterances", path=path, field=intent)
    utterances = []
    for index, item in enumerate(items):
        field = "%s[%d]" % (intent, index)
        words, tags = words_and_tags(_utterance_pieces(item, path, field))
        if not words:
            raise DataError("utterance has no words", path=path, field=field)
        unencodable = [w for w in words if not _is_encodable(w)]
        if unencodable:
            raise DataError("unpaired surrogate in %r" % unencodable[0], path=path, field=field)
        utterances.append(Utterance(words, tags, intent, "%s#%d" % (path, index)))
    return utterances


def _is_encodable(word: str) -> bool:
    try:
        word.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _intents_in(file_names: Sequence[str], pattern: str) -> set:
    """Intent names captured by ``pattern`` from the matching file names."""
    return {m.group(1) for m in (re.fullmatch(pattern, name) for name in file_names) if m}


def _intent_files(data_dir: str) -> Dict[str, Tuple[str, str]]:
    """Intent -> (train file, validate file); raises FileNotFoundError when any is missing."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError("SNIPS data directory %s does not exist. %s"
                                % (data_dir, DATA_HINT))
    names = os.listdir(data_dir)
    train = _intents_in(names, r"train_(\w+)_full\.json")
    dev = _intents_in(names, r"validate_(\w+)\.json")
    if not train or train != dev:
        missing = sorted(["train_%s_full.json" % i for i in dev - train]
                         + ["validate_%s.json" % i for i in train - dev]) or ["all SNIPS files"]
        raise FileNotFoundError("SNIPS data in %s is incomplete: missing %s. %s"
                                % (data_dir, ", ".join(missing), DATA_HINT))
    return {intent: (os.path.join(data_dir, "train_%s_full.json" % intent),
                     os.path.join(data_dir, "validate_%s.json" % intent))
            for intent in sorted(train)}


def split_held_out(utterances: Sequence[Utterance], count: int,
                   rng: random.Random) -> Tuple[List[Utterance], List[Utterance]]:
    """``(rest, held_out)`` with ``count`` utterances drawn by ``rng``; both keep input order."""
    if not 0 <= count <= len(utterances):
        raise ValueError("cannot hold out %d of %d utterances" % (count, len(utterances)))
    chosen = set(rng.sample(range(len(utterances)), count))
    rest = [u for i, u in enumerate(utterances) if i not in chosen]
    held_out = [u for i, u in enumerate(utterances) if i in chosen]
    return rest, held_out


def load_snips(data_dir: str, seed: int = 0,
               test_per_intent: int = 100) -> Dict[str, List[Utterance]]:
    """The standard SNIPS split: ``{'train', 'dev', 'test'}`` lists of utterances.

    From each ``train_<Intent>_full.json``, ``test_per_intent`` utterances drawn with one
    ``random.Random(seed)`` (consumed intent by intent in sorted order) are the test set and the
    rest is train; the ``validate_*`` files are dev. Every list is ordered by intent name, then
    file order. With the full data: 13,084 train, 700 dev, 700 test.
    """
    rng = random.Random(seed)
    splits: Dict[str, List[Utterance]] = {"train": [], "dev": [], "test": []}
    for train_path, dev_path in _intent_files(str(data_dir)).values():
        train, test = split_held_out(read_snips_file(train_path), test_per_intent, rng)
        splits["train"] += train
        splits["test"] += test
        splits["dev"] += read_snips_file(dev_path)
    return splits


def intent_label_list(utterances: Sequence[Utterance]) -> List[str]:
    """Sorted distinct intent names (the default intent ids of :func:`write_palm_tsv`)."""
    return sorted({u.intent for u in utterances})


def slot_label_map(utterances: Sequence[Utterance]) -> Dict[str, int]:
    """Tag -> id over all tags used, sorted, always including ``'O'`` (PALM's label_map JSON)."""
    tags = sorted({tag for u in utterances for tag in u.tags} | {"O"})
    return {tag: index for index, tag in enumerate(tags)}


def _check_tsv_safe(utterance: Utterance) -> None:
    for value in utterance.words + utterance.tags:
        if TOKEN_SEPARATOR in value or any(c in value for c in "\t\r\n"):
            raise ValueError("%s: token %r holds a tab, newline or \\x02"
                             % (utterance.source, value))


def write_palm_tsv(utterances: Sequence[Utterance], intent_path: Optional[str] = None,
                   slot_path: Optional[str] = None,
                   intent_labels: Optional[Sequence[str]] = None) -> List[str]:
    """Write PALM 2.x TSV files and return the intent label list used for the ids.

    ``intent_path`` gets ``label<TAB>text_a`` rows (intent id, space-joined words); ``slot_path``
    gets ``text_a<TAB>label`` rows (words and tags, each joined by ``\\x02``). Intent ids index
    ``intent_labels``, by default the sorted intents of ``utterances``: pass the same list for
    every split so that ids agree.
    """
    if intent_path is None and slot_path is None:
        raise ValueError("give intent_path, slot_path or both")
    labels = list(intent_labels) if intent_labels is not None else intent_label_list(utterances)
    ids = {intent: index for index, intent in enumerate(labels)}
    for u in utterances:
        _check_tsv_safe(u)
        if u.intent not in ids:
            raise ValueError("%s: intent %r is not in intent_labels" % (u.source, u.intent))
    if intent_path is not None:
        _write_lines(intent_path, "label\ttext_a",
                     ["%d\t%s" % (ids[u.intent], " ".join(u.words)) for u in utterances])
    if slot_path is not None:
        _write_lines(slot_path, "text_a\tlabel",
                     [TOKEN_SEPARATOR.join(u.words) + "\t" + TOKEN_SEPARATOR.join(u.tags)
                      for u in utterances])
    return labels


def write_joint_tsv(utterances: Sequence[Utterance], path: str) -> str:
    """``text_a<TAB>label<TAB>tags`` rows for :class:`~paddlepalm.reader.JointLabelReader`: the
    words and the slot tags each joined by ``\x02``, the intent by name; returns ``path``."""
    for u in utterances:
        _check_tsv_safe(u)
    _write_lines(path, "text_a\tlabel\ttags", ["%s\t%s\t%s" % (TOKEN_SEPARATOR.join(u.words), u.intent,
                                                                 TOKEN_SEPARATOR.join(u.tags)) for u in utterances])
    return path


def _write_lines(path: str, header: str, rows: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(header + "\n")
        for row in rows:
            f.write(row + "\n")


# ----------------------------------------------------------------------------- finding and preparing
SNIPS_HOW_TO_GET = ("Get it with:\n    python examples/multi-task/download_data.py\n"
                    "or point --data-dir (or $PADDLEPALM_DATA/snips) at a folder with the files "
                    "train_<Intent>_full.json and validate_<Intent>.json of\n"
                    "https://github.com/sonos/nlu-benchmark/tree/master/2017-06-custom-intent-engines")


def find_snips(data_dir: Optional[str], local_dir: Optional[str] = None) -> str:
    """The folder of the SNIPS JSON files (see :func:`paddlepalm.datasets.locate.find_data`)."""
    return find_data("snips", data_dir, local_dir, has_files("train_*_full.json", "validate_*.json"),
                     SNIPS_HOW_TO_GET)


def write_intent_tsv(utterances: Sequence[Utterance], path: str) -> str:
    """``label<TAB>text_a`` rows with intent *names* (``ClassifyReader`` maps names to ids itself,
    so a saved model answers 'PlayMusic', not 4); returns ``path``."""
    for u in utterances:
        _check_tsv_safe(u)
    _write_lines(path, "label\ttext_a", ["%s\t%s" % (u.intent, " ".join(u.words)) for u in utterances])
    return path


def prepare_snips(data_dir: str, out_dir: str, seed: int = 0, limit: Optional[int] = None) -> Dict[str, Any]:
    """The standard SNIPS split (:func:`load_snips`: 100 utterances per intent of ``train_*_full``
    held out as test, ``validate_*`` as dev) written to ``out_dir``:

    ``intent_{train,dev,test}.tsv`` (label name, text), ``slot_{train,dev,test}.tsv`` (PALM's
    ``\\x02``-joined words and BIO tags), ``joint_{train,dev,test}.tsv`` (words, intent and tags
    for one shared ``joint_label`` reader), ``intent_labels.json`` and ``slot_label_map.json`` (the
    tags of all three splits). ``limit`` keeps at most that many utterances per split (drawn with
    ``seed``). Returns the paths (``files[split][task]``), the label lists and the split sizes.
    """
    splits = load_snips(data_dir, seed=seed)
    everything = splits["train"] + splits["dev"] + splits["test"]
    intents = intent_label_list(everything)
    tags = slot_label_map(everything)
    os.makedirs(out_dir, exist_ok=True)
    info: Dict[str, Any] = {"intent_labels": intents, "slot_label_map": tags, "sizes": {}, "files": {}}
    for name, utterances in splits.items():
        utterances = subsample(utterances, limit, seed)
        intent_path = os.path.join(out_dir, "intent_%s.tsv" % name)
        slot_path = os.path.join(out_dir, "slot_%s.tsv" % name)
        joint_path = os.path.join(out_dir, "joint_%s.tsv" % name)
        write_intent_tsv(utterances, intent_path)
        write_palm_tsv(utterances, slot_path=slot_path, intent_labels=intents)
        write_joint_tsv(utterances, joint_path)
        info["files"][name] = {"intent": intent_path, "slot": slot_path, "joint": joint_path}
        info["sizes"][name] = len(utterances)
    for fname, value in (("intent_labels.json", intents), ("slot_label_map.json", tags)):
        with open(os.path.join(out_dir, fname), "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1)
    info["intent_labels_file"] = os.path.join(out_dir, "intent_labels.json")
    info["slot_label_map_file"] = os.path.join(out_dir, "slot_label_map.json")
    return info


# ----------------------------------------------------------------------------- readers
JOINT_FIELDS = {"slot": "word_labels", "intent": "label"}  # task -> the JointLabelReader field it reads


def snips_joint_readers(data: Dict[str, Any], pretrained: str, max_len: int, batch_size: int,
                        seed: int) -> Dict[str, Any]:
    """Train/dev/test :class:`~paddlepalm.reader.JointLabelReader`s over the ``joint_*.tsv`` files
    of :func:`prepare_snips` (``data`` is what it returned): words, intent and slot tags in one
    reader, so both tasks share one tokenization and one encoder pass per batch (each task reads
    its view: ``reader.view(JOINT_FIELDS[task])``). Train is shuffled with ``seed`` and batched by
    ``batch_size``, dev and test by 64; all bucket by length and use the label maps of ``data``.
    """
    from paddlepalm.reader import JointLabelReader

    files = data["files"]
    make = lambda phase, seed=None: JointLabelReader(
        pretrained, max_len, label_map=data["intent_labels"], tag_map=data["slot_label_map"], phase=phase,
        seed=seed, bucket_by_length=True)
    train = make("train", seed).load_data(files["train"]["joint"], batch_size)
    dev = make("dev").load_data(files["dev"]["joint"], 64)
    test = dev.clone("test").load_data(files["test"]["joint"], 64)
    return {"train": train, "dev": dev, "test": test}
