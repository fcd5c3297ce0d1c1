"""The one BERT-family transformer encoder (post-LayerNorm, as in BERT/ERNIE/RoBERTa).

Parameter names follow Paddle's own transformer naming (``encoder.layers.N.self_attn.q_proj``,
``linear1``, ``norm1`` ...) so PaddleNLP checkpoints load by stripping a prefix, and Hugging Face
checkpoints by a fixed rename table (see :mod:`paddlepalm.backbone.weights`).
"""
import math
from typing import List, NamedTuple, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddlepalm.backbone import fastpath
from paddlepalm.backbone.config import EncoderConfig


class EncoderOutput(NamedTuple):
    """``[0]`` sequence output ``[B, L, H]``, ``[1]`` pooled ``[CLS]`` output ``[B, H]``.

    ``hidden_states`` (embeddings + every layer, ``num_layers + 1`` tensors) and ``attentions``
    (``[B, heads, L, L]`` per layer) are filled only when requested.
    """

    sequence_output: paddle.Tensor
    pooled_output: paddle.Tensor
    hidden_states: Optional[List[paddle.Tensor]] = None
    attentions: Optional[List[paddle.Tensor]] = None


def _activation(name: str):
    if name == "gelu":
        return lambda x: F.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_fast"):
        return lambda x: F.gelu(x, approximate=True)
    return {"relu": F.relu, "tanh": paddle.tanh, "silu": F.silu}[name]


def _normal(std: float) -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Normal(mean=0.0, std=std))


class Embeddings(nn.Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        init = _normal(config.initializer_range)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, weight_attr=init)
        self.position_embeddings = (  # NEZHA: relative positions in attention, no absolute table
            None if config.relative_positions else
            nn.Embedding(config.max_position_embeddings, config.hidden_size, weight_attr=init))
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, config.hidden_size, weight_attr=init)
            if config.type_vocab_size > 0 else None)
        self.task_type_embeddings = (
            nn.Embedding(config.task_type_vocab_size, config.hidden_size, weight_attr=init)
            if config.use_task_type else None)
        self.layer_norm = fastpath.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.dropout = fastpath.Dropout(config.hidden_dropout_prob)
        self.pad_token_id = config.pad_token_id
        self.position_offset = config.position_offset
        self.task_type_vocab_size = config.task_type_vocab_size
        self.config_file = config.source_file

    def _position_ids(self, input_ids):
        seq_len = input_ids.shape[1]
        if self.position_offset:  # RoBERTa: count real tokens only, starting after padding_idx
            mask = (input_ids != self.pad_token_id).astype("int64")
            return paddle.cumsum(mask, axis=1) * mask + self.pad_token_id
        return paddle.arange(seq_len, dtype="int64").unsqueeze(0)

    def forward(self, input_ids, token_type_ids=None, position_ids=None, task_type_ids=None):
        x = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            if position_ids is None:
                position_ids = self._position_ids(input_ids)
            x = x + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = paddle.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        if self.task_type_embeddings is not None:
            if task_type_ids is None:
                task_type_ids = paddle.zeros_like(input_ids)
            elif paddle.in_dynamic_mode():
                self._check_task_ids(task_type_ids)
            x = x + self.task_type_embeddings(task_type_ids)
        return self.dropout(self.layer_norm(x))

    def _check_task_ids(self, task_type_ids) -> None:
        low, high = int(task_type_ids.min()), int(task_type_ids.max())
        if low < 0 or high >= self.task_type_vocab_size:
            raise ValueError("%s: key 'task_type_vocab_size' is %d, so task_type_ids must be in [0, %d); "
                             "the batch has task id %d" % (self.config_file or "encoder config",
                                                          self.task_type_vocab_size,
                                                          self.task_type_vocab_size,
                                                          high if high >= self.task_type_vocab_size else low))


def relative_position_table(num_relative: int, depth: int) -> np.ndarray:
    """NEZHA's functional relative position encoding (Wei et al. 2019): a sinusoid table of
    ``num_relative`` rows (relative distances ``-k..k`` shifted to ``0..2k``), ``depth`` columns."""
    position = np.arange(num_relative, dtype=np.float32)[:, None]
    div_term = np.exp(np.arange(0, depth, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / depth))
    table = np.zeros((num_relative, depth), dtype=np.float32)
    table[:, 0::2] = np.sin(position * div_term)
    table[:, 1::2] = np.cos(position * div_term)[:, : depth // 2]
    return table


class RelativePositions(nn.Layer):
    """``[L, L, head_dim]`` encodings of the clipped distance ``j - i`` (computed, not learned)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.max_distance = config.max_relative_position
        table = relative_position_table(2 * self.max_distance + 1, config.head_dim)
        self.register_buffer("table", paddle.to_tensor(table), persistable=False)

    def forward(self, seq_len):
        pos = paddle.arange(seq_len, dtype="int64")
        distance = pos.unsqueeze(0) - pos.unsqueeze(1)  # [i, j] = j - i
        index = paddle.clip(distance, -self.max_distance, self.max_distance) + self.max_distance
        return paddle.gather(self.table, index.reshape([-1])).reshape([seq_len, seq_len, -1])


class SelfAttention(nn.Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        hidden, init = config.hidden_size, _normal(config.initializer_range)
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.q_proj = fastpath.Linear(hidden, hidden, weight_attr=init)
        self.k_proj = fastpath.Linear(hidden, hidden, weight_attr=init)
        self.v_proj = fastpath.Linear(hidden, hidden, weight_attr=init)
        self.out_proj = fastpath.Linear(hidden, hidden, weight_attr=init)
        self.dropout = fastpath.Dropout(config.attention_probs_dropout_prob)

    def _split_heads(self, x):  # reshape's 0 keeps a dim: no shape arithmetic in exported graphs
        return x.reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, x, additive_mask, need_weights: bool = False, relations=None, query_rows: Optional[int] = None):
        """``query_rows``: only the first ``query_rows`` positions attend (keys and values are every
        position); the output then has ``query_rows`` rows."""
        if query_rows:
            if additive_mask is not None and additive_mask.shape[2] != 1:  # expanded [B, h, L, L]
                additive_mask = additive_mask[:, :, :query_rows]
            if relations is not None:
                relations = relations[:query_rows]
        q = self._split_heads(self.q_proj(x[:, :query_rows] if query_rows else x))
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        scale = 1.0 / math.sqrt(self.head_dim)
        if relations is not None:  # NEZHA: q.(k_j + r_ij) / sqrt(d), then sum_j p_ij (v_j + r_ij)
            q = q * scale
            scores = paddle.matmul(q, k, transpose_y=True) + _per_query(q, relations, transpose_y=True)
        elif not paddle.in_dynamic_mode() or x.shape[1] > self.head_dim:
            # scale the smaller of q [B, h, L, d] and the scores [B, h, L, L]; an exported program
            # has no fixed L and always scales q (a branch on L would be an If node per layer)
            scores = paddle.matmul(q * scale, k, transpose_y=True)
        else:
            scores = paddle.matmul(q, k, transpose_y=True) * scale
        if additive_mask is not None:
            scores = scores + additive_mask
        weights = F.softmax(scores, axis=-1)
        dropped = self.dropout(weights)
        context = paddle.matmul(dropped, v)
        if relations is not None:
            context = context + _per_query(dropped, relations)
        context = context.transpose([0, 2, 1, 3]).reshape([0, 0, self.num_heads * self.head_dim])
        return self.out_proj(context), (weights if need_weights else None)


def _per_query(x, relations, transpose_y: bool = False):
    """``x`` [B, h, L, n] times each query's own matrix ``relations[i]`` [L, m, d] -> [B, h, L, *]."""
    b, h, l = x.shape[0], x.shape[1], x.shape[2]
    rows = x.transpose([2, 0, 1, 3]).reshape([l, b * h, x.shape[3]])  # [L, B*h, n]
    out = paddle.matmul(rows, relations, transpose_y=transpose_y)  # [L, B*h, L or d]
    return out.reshape([l, b, h, out.shape[-1]]).transpose([1, 2, 0, 3])


class TransformerLayer(nn.Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        init = _normal(config.initializer_range)
        self.self_attn = SelfAttention(config)
        self.norm1 = fastpath.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.linear1 = fastpath.Linear(config.hidden_size, config.intermediate_size, weight_attr=init)
        self.linear2 = fastpath.Linear(config.intermediate_size, config.hidden_size, weight_attr=init)
        self.norm2 = fastpath.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.dropout = fastpath.Dropout(config.hidden_dropout_prob)
        self.activation = _activation(config.hidden_act)

    def forward(self, x, additive_mask, need_weights: bool = False, relations=None, query_rows: Optional[int] = None):
        attn, weights = self.self_attn(x, additive_mask, need_weights, relations, query_rows)
        if query_rows:
            x = x[:, :query_rows]
        x = self.norm1(x + self.dropout(attn))
        ffn = self.linear2(self.activation(self.linear1(x)))  # no dropout here, as in BERT / HF / PaddleNLP
        return self.norm2(x + self.dropout(ffn)), weights


class TransformerStack(nn.Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.layers = nn.LayerList([TransformerLayer(config) for _ in range(config.num_hidden_layers)])


class Pooler(nn.Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.dense = fastpath.Linear(config.hidden_size, config.hidden_size,
                                     weight_attr=_normal(config.initializer_range))

    def forward(self, sequence_output):
        return paddle.tanh(self.dense(sequence_output[:, 0]))


class Encoder(nn.Layer):
    """BERT-family encoder; ``model(input_ids, token_type_ids=None, attention_mask=None)``.

    ``first_token_only=True`` (asked for by heads that read [CLS] only): the last
    layer computes position 0 alone (its keys and values still cover every position), so
    ``sequence_output`` is ``[B, 1, H]`` and the last of ``hidden_states`` too; the [CLS] vector and
    the pooled output are those of the full computation (to float rounding). Ignored with
    ``output_attentions``.
    """

    model_type = None  # set by the ERNIE / BERT / RoBERTa front classes
    accepts_first_token_only = True  # see forward.head_encoder_options

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = TransformerStack(config)
        self.pooler = Pooler(config)
        self.relative_positions = RelativePositions(config) if config.relative_positions else None

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, position_ids=None,
                task_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False, first_token_only: bool = False) -> EncoderOutput:
        x = self.embeddings(input_ids, token_type_ids, position_ids, task_type_ids)
        additive_mask = None
        if attention_mask is not None:
            # [B, L] of 1 (keep) / 0 (pad) -> [B, 1, 1, L] additive mask in the activations' dtype
            keep = attention_mask.astype(x.dtype).unsqueeze([1, 2])
            additive_mask = (1.0 - keep) * -1e4
            if paddle.in_dynamic_mode() and x.place.is_cpu_place():
                # Paddle's CPU add is ~8x slower when it broadcasts: expand once, not in every layer
                b, l = input_ids.shape[0], input_ids.shape[1]
                additive_mask = additive_mask.expand([b, self.config.num_attention_heads, l, l])
        relations = None if self.relative_positions is None else self.relative_positions(input_ids.shape[1])
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        last = len(self.encoder.layers) - 1
        for i, layer in enumerate(self.encoder.layers):
            rows = 1 if first_token_only and i == last and not output_attentions else None
            x, weights = layer(x, additive_mask, output_attentions, relations, rows)
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(weights)
        return EncoderOutput(x, self.pooler(x), hidden_states, attentions)
