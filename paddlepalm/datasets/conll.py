"""CoNLL files (one ``word<TAB>tag`` per line, a blank line between sentences): seeded subsets."""
import os
from typing import List, Optional

from paddlepalm.datasets.subset import subsample


def read_sentence_blocks(path: str) -> List[str]:
    """The sentences of a CoNLL file as text blocks (their lines joined by ``\\n``), in file order.

    A sentence ends at a line that is empty or holds only whitespace, as in the sequence-labelling
    reader (WNUT-17's train file separates 2,394 of its 3,394 sentences by a line holding one tab);
    ``-DOCSTART-`` blocks are dropped.
    """
    blocks: List[str] = []
    lines: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().replace("\r\n", "\n").split("\n"):
            if line.strip():
                lines.append(line)
            elif lines:
                blocks.append("\n".join(lines))
                lines = []
    if lines:
        blocks.append("\n".join(lines))
    return [b for b in blocks if not b.lstrip().startswith("-DOCSTART-")]


def limit_conll(path: str, limit: Optional[int], dest: str, seed: int = 0) -> str:
    """``path`` itself, or (with ``limit``) ``dest`` holding ``limit`` of its sentences drawn with
    ``seed``, in file order (see :func:`read_sentence_blocks`)."""
    if not limit:
        return path
    blocks = read_sentence_blocks(path)
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("\n\n".join(b.strip("\n") for b in subsample(blocks, limit, seed)) + "\n")
    return dest
