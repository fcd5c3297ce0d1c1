"""Entity-level precision, recall and F1 for tag sequences (BIO or BIOES), conlleval semantics.

Tags are ``'O'`` or ``'<prefix>-<type>'`` with prefix B/I (BIO) or B/I/E/S (BIOES). Ill-formed
sequences are read the way the CoNLL ``conlleval`` script reads them, so scores agree with it:

* an entity starts at a ``B``/``S`` tag, and also at an ``I``/``E`` tag that follows ``O``, an
  entity of another type, or an entity already closed by ``E``/``S``;
* an entity ends before ``O``, before any tag that starts a new entity, after ``E``/``S``, and at
  the end of the sequence.

An entity counts as correct only if its type, start and end all match a gold entity.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from paddlepalm.metrics.classification import f1_from_counts

Entity = Tuple[str, int, int]  # (type, start, end_exclusive)

SCHEME_PREFIXES = {"BIO": frozenset("BI"), "BIOES": frozenset("BIES")}


def split_tag(tag: str, scheme: str = "BIO") -> Tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``, ``'O'`` -> ``('O', '')``; ValueError for other tags."""
    if tag == "O":
        return "O", ""
    prefix, dash, entity_type = tag.partition("-")
    if not dash or not entity_type or prefix not in SCHEME_PREFIXES[scheme]:
        raise ValueError("invalid %s tag %r: expected 'O' or one of %s followed by '-<type>'"
                         % (scheme, tag, "/".join(sorted(SCHEME_PREFIXES[scheme]))))
    return prefix, entity_type


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEME_PREFIXES:
        raise ValueError("scheme must be one of %s, got %r" % (", ".join(SCHEME_PREFIXES), scheme))


def extract_entities(tags: Sequence[str], scheme: str = "BIO") -> List[Entity]:
    """Entities of one tag sequence as ``(type, start, end_exclusive)``, in order of start."""
    _check_scheme(scheme)
    entities: List[Entity] = []
    open_type, open_start = None, 0  # the entity being read, if any
    for position, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag, scheme)
        starts_new = prefix in ("B", "S") or open_type != entity_type
        if open_type is not None and (prefix == "O" or starts_new):
            entities.append((open_type, open_start, position))
            open_type = None
        if prefix == "O":
            continue
        if open_type is None:
            open_type, open_start = entity_type, position
        if prefix in ("E", "S"):
            entities.append((open_type, open_start, position + 1))
            open_type = None
    if open_type is not None:
        entities.append((open_type, open_start, len(tags)))
    return entities


def _sequences_entities(sequences: Sequence[Sequence[str]], scheme: str) -> List[set]:
    return [set(extract_entities(tags, scheme)) for tags in sequences]


def _check_sequences(gold_sequences, pred_sequences) -> None:
    if len(gold_sequences) == 0:
        raise ValueError("cannot score empty input: no gold sequences")
    if len(gold_sequences) != len(pred_sequences):
        raise ValueError("got %d gold sequences but %d predicted sequences"
                         % (len(gold_sequences), len(pred_sequences)))
    for index, (gold, pred) in enumerate(zip(gold_sequences, pred_sequences)):
        if isinstance(gold, str) or isinstance(pred, str):
            raise ValueError("sequence %d is a string; pass a list of tags" % index)
        if len(gold) != len(pred):
            raise ValueError("sequence %d: gold has %d tags but prediction has %d"
                             % (index, len(gold), len(pred)))


def entity_f1(gold_sequences: Sequence[Sequence[str]], pred_sequences: Sequence[Sequence[str]],
              scheme: str = "BIO") -> Dict[str, object]:
    """Micro-averaged entity precision/recall/F1 over all sequences, plus per-type scores.

    Returns ``{'precision', 'recall', 'f1', 'per_type': {type: {precision, recall, f1,
    support}}}``; ``support`` is the number of gold entities of the type, and types that occur
    only in predictions are listed with support 0.
    """
    _check_scheme(scheme)
    _check_sequences(gold_sequences, pred_sequences)
    gold_sets = _sequences_entities(gold_sequences, scheme)
    pred_sets = _sequences_entities(pred_sequences, scheme)
    counts: Dict[str, List[int]] = {}  # type -> [correct, predicted, gold]
    for gold, pred in zip(gold_sets, pred_sets):
        for entity in gold & pred:
            counts.setdefault(entity[0], [0, 0, 0])[0] += 1
        for entity in pred:
            counts.setdefault(entity[0], [0, 0, 0])[1] += 1
        for entity in gold:
            counts.setdefault(entity[0], [0, 0, 0])[2] += 1
    per_type = {entity_type: dict(_scores(*counts[entity_type]), support=counts[entity_type][2])
                for entity_type in sorted(counts)}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    return dict(_scores(*totals), per_type=per_type)


def _scores(correct: int, predicted: int, gold: int) -> Dict[str, float]:
    return f1_from_counts(correct, predicted - correct, gold - correct)
