"""Sentence vectors from the encoder, and document vectors from chunk vectors.

* :data:`REPRESENTATIONS` -- how a sentence (an encoder row) becomes one vector: ``pooled`` (the
  encoder's pooler on [CLS], as before), ``cls`` (last layer's [CLS]), ``mean_tokens`` (mean of
  the last layer over real tokens), and over the last ``k`` layers' [CLS]: ``concat_layers``,
  ``mean_layers``, ``max_layers`` (Sun et al. 2019 found max over the last 4 layers among the best).
* :data:`CHUNK_POOLS` -- how the vectors of a long document's chunks become one vector: ``mean``,
  ``max`` or ``attention`` (a learned score per chunk, softmax over the document's real chunks;
  padding chunks get weight 0).
"""
from typing import Callable, Dict, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddlepalm.backbone.encoder import EncoderOutput
from paddlepalm.registry import Registry

Representation = Callable[[EncoderOutput, Optional[paddle.Tensor], int], paddle.Tensor]
REPRESENTATIONS: Registry = Registry("sentence representation")
CHUNK_POOLS: Registry = Registry("chunk pooling")
LAYER_REPRESENTATIONS = ("concat_layers", "mean_layers", "max_layers")
_NEG = -1e9


def _last_cls(output: EncoderOutput, k: int):
    states = output.hidden_states
    if states is None:
        raise ValueError("this representation needs the encoder's hidden states; the head's "
                         "encoder_options() asks for them, pass them to the encoder")
    if not 1 <= k <= len(states) - 1:
        raise ValueError("last_layers=%d, but the encoder has %d layers" % (k, len(states) - 1))
    return [h[:, 0] for h in states[-k:]]


def _mean_tokens(output: EncoderOutput, attention_mask: Optional[paddle.Tensor], k: int):
    seq = output.sequence_output
    if attention_mask is None:
        return seq.mean(axis=1)
    mask = attention_mask.astype(seq.dtype).unsqueeze(-1)
    return (seq * mask).sum(axis=1) / mask.sum(axis=1).clip(min=1.0)


REPRESENTATIONS.register("pooled", lambda output, mask, k: output.pooled_output)
REPRESENTATIONS.register("cls", lambda output, mask, k: output.sequence_output[:, 0])
REPRESENTATIONS.register("mean_tokens", _mean_tokens)
REPRESENTATIONS.register("concat_layers", lambda output, mask, k: paddle.concat(_last_cls(output, k), axis=-1))
REPRESENTATIONS.register("mean_layers", lambda output, mask, k: paddle.stack(_last_cls(output, k)).mean(axis=0))
REPRESENTATIONS.register("max_layers", lambda output, mask, k: paddle.stack(_last_cls(output, k)).max(axis=0))


def check_representation(name: str, last_layers: int) -> None:
    """Raise ValueError for an unknown representation or a bad ``last_layers``."""
    if name not in REPRESENTATIONS:
        _unknown(REPRESENTATIONS, name)
    if name in LAYER_REPRESENTATIONS and int(last_layers) < 1:
        raise ValueError("last_layers must be >= 1, got %r" % (last_layers,))


def _unknown(registry: Registry, name: str):
    raise ValueError("unknown %s %r; expected one of %s" % (registry.kind, name, ", ".join(registry.names())))


def representation_dim(name: str, hidden_size: int, last_layers: int) -> int:
    """Width of the vectors ``name`` gives for an encoder of ``hidden_size``."""
    return hidden_size * int(last_layers) if name == "concat_layers" else hidden_size


def sentence_vectors(name: str, output: EncoderOutput, attention_mask: Optional[paddle.Tensor] = None,
                     last_layers: int = 4) -> paddle.Tensor:
    """``[rows, dim]``: one vector per encoder row, by representation ``name``."""
    return REPRESENTATIONS.get(name)(output, attention_mask, int(last_layers))


def group_chunks(vectors: paddle.Tensor, chunk_rows: paddle.Tensor) -> paddle.Tensor:
    """``[rows, F]`` and ``chunk_rows`` ``[D, K]`` -> ``[D, K, F]`` (document d's k-th chunk)."""
    return paddle.gather_nd(vectors, chunk_rows.unsqueeze(-1))


class ChunkPool(nn.Layer):
    """Base of chunk poolings: ``pool(vectors [rows, F], chunk_rows [D, K], chunk_mask [D, K])``."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, vectors, chunk_rows, chunk_mask):
        return self.pool(group_chunks(vectors, chunk_rows), chunk_mask)

    def pool(self, grouped: paddle.Tensor, chunk_mask: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError


@CHUNK_POOLS.register("mean")
class MeanPool(ChunkPool):
    def pool(self, grouped, chunk_mask):
        mask = chunk_mask.astype(grouped.dtype).unsqueeze(-1)
        return (grouped * mask).sum(axis=1) / mask.sum(axis=1).clip(min=1.0)


@CHUNK_POOLS.register("max")
class MaxPool(ChunkPool):
    def pool(self, grouped, chunk_mask):
        keep = chunk_mask.astype("bool").unsqueeze(-1)
        return paddle.where(keep, grouped, paddle.full_like(grouped, _NEG)).max(axis=1)


@CHUNK_POOLS.register("attention")
class AttentionPool(ChunkPool):
    """``score_k = v . tanh(W h_k + b)``; weights = softmax of the scores over real chunks."""

    def __init__(self, dim: int, init_range: float = 0.02):
        super().__init__(dim)
        init = paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(std=init_range))
        self.proj = nn.Linear(dim, dim, weight_attr=init)
        self.score = nn.Linear(dim, 1, weight_attr=init, bias_attr=False)

    def weights(self, grouped: paddle.Tensor, chunk_mask: paddle.Tensor) -> paddle.Tensor:
        """``[D, K]`` attention weights; 0 on padding chunks, each row sums to 1."""
        scores = self.score(paddle.tanh(self.proj(grouped))).squeeze(-1)
        keep = chunk_mask.astype("bool")
        scores = paddle.where(keep, scores, paddle.full_like(scores, _NEG))
        return F.softmax(scores, axis=-1) * keep.astype(scores.dtype)

    def pool(self, grouped, chunk_mask):
        return (self.weights(grouped, chunk_mask).unsqueeze(-1) * grouped).sum(axis=1)


def build_chunk_pool(name: str, dim: int, init_range: float = 0.02) -> ChunkPool:
    if name not in CHUNK_POOLS:
        _unknown(CHUNK_POOLS, name)
    cls = CHUNK_POOLS.get(name)
    return cls(dim, init_range) if cls is AttentionPool else cls(dim)


class SentenceEncoding(nn.Layer):
    """Representation + (for chunked documents) chunk pooling: what classify and match heads read.

    ``SentenceEncoding(input_dim, representation='pooled', last_layers=4, chunk_pooling='mean')``;
    ``forward(encoder_output, batch)`` -> ``[D, dim]``, one vector per document (``D`` = rows when
    the batch is not chunked).
    """

    def __init__(self, input_dim: int, representation: str = "pooled", last_layers: int = 4,
                 chunk_pooling: str = "mean", init_range: float = 0.02):
        super().__init__()
        check_representation(representation, last_layers)
        self.representation = representation
        self.last_layers = int(last_layers)
        self.dim = representation_dim(representation, input_dim, last_layers)
        self.chunk_pooling = chunk_pooling
        self.chunk_pool = build_chunk_pool(chunk_pooling, self.dim, init_range)

    def encoder_options(self) -> Dict[str, bool]:
        options = {"output_hidden_states": True} if self.representation in LAYER_REPRESENTATIONS else {}
        if self.representation != "mean_tokens":  # [CLS] rows only: the encoder's last layer may
            options["first_token_only"] = True  # skip every other position (the loss never reads them)
        return options

    def forward(self, encoder_output: EncoderOutput, batch) -> paddle.Tensor:
        mask = batch["attention_mask"] if self.representation == "mean_tokens" and "attention_mask" in batch \
            else None
        vectors = sentence_vectors(self.representation, encoder_output, mask, self.last_layers)
        if "chunk_rows" in batch:
            vectors = self.chunk_pool(vectors, batch["chunk_rows"], batch["chunk_mask"])
        return vectors
