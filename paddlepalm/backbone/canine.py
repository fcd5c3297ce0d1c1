"""Canine (Clark et al. 2021): a tokenization-free encoder over Unicode code points.

The way through the model (names as in the paper and in Hugging Face's ``CanineModel``):

1. **hash embeddings**: each code point ``c`` is hashed ``num_hash_functions`` times,
   ``((c + 1) * prime_k) % num_hash_buckets``, each hash picks a row of its own table of
   ``hidden_size / num_hash_functions`` columns; the slices are concatenated. Plus learned
   character positions and token types, LayerNorm, dropout.
2. a **local-attention character layer**: one transformer layer in which each block of
   ``local_transformer_stride`` characters attends only within itself.
3. **downsampling**: a strided convolution (kernel = stride = ``downsampling_rate``) turns
   characters into "molecules"; the first character's vector is kept as the ``[CLS]`` molecule.
4. the **deep transformer** on molecules (``num_hidden_layers``); the pooled output is its first
   molecule through ``tanh(dense(.))``.
5. **upsampling** for token-level outputs: each molecule is repeated ``downsampling_rate`` times,
   concatenated with the character layer's output, projected by a convolution of width
   ``upsampling_kernel_size``, and one more (full-attention) transformer layer gives one vector
   per character: ``sequence_output`` ``[B, L, H]``.

The transformer layers are the shared :class:`~paddlepalm.backbone.encoder.TransformerLayer`;
only the embeddings and the down/up-sampling are Canine's own.
"""
from typing import Dict, List, Optional

import numpy as np
import paddle
import paddle.nn as nn

from paddlepalm.backbone import fastpath
from paddlepalm.backbone.config import CANINE_PRIMES, CanineConfig
from paddlepalm.backbone.encoder import EncoderOutput, Pooler, TransformerLayer, _activation, _normal
from paddlepalm.errors import CheckpointError



class HashEmbeddings(nn.Layer):
    """Code points -> concatenated slices from ``num_hash_functions`` hashed tables."""

    def __init__(self, config: CanineConfig):
        super().__init__()
        init = _normal(config.initializer_range)
        shard = config.hidden_size // config.num_hash_functions
        self.hash_embeddings = nn.LayerList([nn.Embedding(config.num_hash_buckets, shard, weight_attr=init)
                                             for _ in range(config.num_hash_functions)])
        # Canine's position table has num_hash_buckets rows (so does the reference implementation)
        self.position_embeddings = nn.Embedding(config.num_hash_buckets, config.hidden_size, weight_attr=init)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size, weight_attr=init)
        self.layer_norm = nn.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)
        self.dropout = fastpath.Dropout(config.hidden_dropout_prob)
        self.primes = CANINE_PRIMES[:config.num_hash_functions]
        self.num_buckets = config.num_hash_buckets

    def forward(self, input_ids, token_type_ids=None, position_ids=None):
        shards = [table(((input_ids + 1) * prime) % self.num_buckets)
                  for table, prime in zip(self.hash_embeddings, self.primes)]
        x = paddle.concat(shards, axis=-1)
        if position_ids is None:
            position_ids = paddle.arange(input_ids.shape[1], dtype="int64").unsqueeze(0)
        x = x + self.position_embeddings(position_ids)
        if token_type_ids is None:
            token_type_ids = paddle.zeros_like(input_ids)
        x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.layer_norm(x))


class Stack(nn.Layer):
    """A few shared transformer layers (``layers.N`` as in the BERT-family encoder)."""

    def __init__(self, config: CanineConfig, num_layers: int):
        super().__init__()
        layer_config = config.layer_config()
        self.layers = nn.LayerList([TransformerLayer(layer_config) for _ in range(num_layers)])

    def forward(self, x, additive_mask, hidden_states: Optional[list] = None):
        for layer in self.layers:
            x, _ = layer(x, additive_mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return x


class Downsample(nn.Layer):
    """Characters -> molecules: [CLS] character + a strided convolution, the last molecule dropped."""

    def __init__(self, config: CanineConfig):
        super().__init__()
        h, rate = config.hidden_size, config.downsampling_rate
        self.conv = nn.Conv1D(h, h, kernel_size=rate, stride=rate)
        self.layer_norm = nn.LayerNorm(h, epsilon=config.layer_norm_eps)
        self.activation = _activation(config.hidden_act)

    def forward(self, chars):
        down = self.activation(self.conv(chars.transpose([0, 2, 1])).transpose([0, 2, 1]))
        return self.layer_norm(paddle.concat([chars[:, 0:1], down[:, :-1]], axis=1))


class Upsample(nn.Layer):
    """[characters ; repeated molecules] (2H) -> H by a 'same'-padded convolution."""

    def __init__(self, config: CanineConfig):
        super().__init__()
        h, k = config.hidden_size, config.upsampling_kernel_size
        self.conv = nn.Conv1D(2 * h, h, kernel_size=k, stride=1)
        self.layer_norm = nn.LayerNorm(h, epsilon=config.layer_norm_eps)
        self.dropout = fastpath.Dropout(config.hidden_dropout_prob)
        self.activation = _activation(config.hidden_act)
        self.padding = ((k - 1) // 2, k - 1 - (k - 1) // 2)

    def forward(self, x):
        x = nn.functional.pad(x.transpose([0, 2, 1]), list(self.padding), data_format="NCL")
        x = self.activation(self.conv(x).transpose([0, 2, 1]))
        return self.dropout(self.layer_norm(x))


class Canine(nn.Layer):
    """Canine encoder: ``model(input_ids, token_type_ids=None, attention_mask=None)`` on code points.

    ``sequence_output`` has one vector per input character (so character offsets stay exact),
    ``pooled_output`` comes from the [CLS] molecule. Load Hugging Face ``google/canine-s`` /
    ``google/canine-c`` checkpoints with :meth:`from_pretrained`.
    """

    model_type = "canine"

    def __init__(self, config=None, phase: str = "train", **kwargs):
        super().__init__()
        if config is None or kwargs:
            config = CanineConfig.from_dict({**(config or {}), **kwargs}, strict=True)
        elif not isinstance(config, CanineConfig):
            config = CanineConfig.load(config, strict=True)
            if not isinstance(config, CanineConfig):
                raise CheckpointError("%s: model_type %r is not a Canine config"
                                      % (config.source_file or "config", config.model_type))
        self.config = config
        self.embeddings = HashEmbeddings(config)
        self.initial_char_encoder = Stack(config, 1)
        self.chars_to_molecules = Downsample(config)
        self.encoder = Stack(config, config.num_hidden_layers)
        self.projection = Upsample(config)
        self.final_char_encoder = Stack(config, 1)
        self.pooler = Pooler(config.layer_config())
        self.max_length = min(config.max_position_embeddings, config.num_hash_buckets)
        self.phase = phase
        self.load_report = None
        if phase != "train":
            self.eval()

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids, token_type_ids=None, attention_mask=None, position_ids=None,
                task_type_ids=None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> EncoderOutput:
        if output_attentions:
            raise NotImplementedError("Canine does not return attention weights")
        cfg = self.config
        rate = cfg.downsampling_rate
        length = input_ids.shape[1]
        if paddle.in_dynamic_mode():
            if length < rate:
                raise ValueError("Canine needs at least downsampling_rate=%d characters per row (with [CLS] "
                                 "and [SEP]); the batch has %d" % (rate, length))
            if length > self.max_length:
                raise ValueError("the batch has %d characters per row but this Canine has %d character "
                                 "positions (max_position_embeddings / num_hash_buckets); lower max_len"
                                 % (length, self.max_length))
        if attention_mask is None:
            attention_mask = paddle.ones_like(input_ids)
        keep = attention_mask.astype("float32")
        chars = self.embeddings(input_ids, token_type_ids, position_ids)
        hidden_states = [chars] if output_hidden_states else None
        chars = self._local_layer(chars, keep)
        if hidden_states is not None:
            hidden_states.append(chars)
        molecules = self.chars_to_molecules(chars)
        molecule_keep = nn.functional.max_pool1d(keep.unsqueeze(1), kernel_size=rate, stride=rate).squeeze(1)
        molecules = self.encoder(molecules, _additive(molecule_keep, chars.dtype), hidden_states)
        pooled = self.pooler(molecules)
        repeated = paddle.gather(molecules, self._molecule_of_char(length, molecules.shape[1]), axis=1)
        x = self.projection(paddle.concat([chars, repeated], axis=-1))
        x = self.final_char_encoder(x, _additive(keep, x.dtype), hidden_states)
        return EncoderOutput(x, pooled, hidden_states, None)

    def _local_layer(self, chars, keep):
        """The character layer with attention inside blocks of ``local_transformer_stride``:
        rows are cut into blocks and run as a batch of short sequences (exactly the same result
        as block-diagonal attention, at a fraction of the cost)."""
        block = self.config.local_transformer_stride
        b, length, h = chars.shape[0], chars.shape[1], chars.shape[2]
        blocks = (length + block - 1) // block
        pad = blocks * block - length
        if pad:
            chars = paddle.concat([chars, paddle.zeros([b, pad, h], dtype=chars.dtype)], axis=1)
            keep = paddle.concat([keep, paddle.zeros([b, pad], dtype=keep.dtype)], axis=1)
        x = chars.reshape([b * blocks, block, h])
        mask = _additive(keep.reshape([b * blocks, block]), x.dtype)
        x = self.initial_char_encoder(x, mask).reshape([b, blocks * block, h])
        return x[:, :length] if pad else x

    def _molecule_of_char(self, length, num_molecules):
        """Index of the molecule each character is upsampled from: character ``i`` takes molecule
        ``i // rate + 1`` (the [CLS] molecule is not repeated), the tail takes the last one."""
        index = paddle.arange(length, dtype="int64") // self.config.downsampling_rate + 1
        return paddle.minimum(index, paddle.full_like(index, num_molecules - 1))

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_config(cls, config, phase: str = "train", **overrides) -> "Canine":
        cfg = CanineConfig.load(config, strict=True) if not isinstance(config, CanineConfig) else config
        if overrides:
            cfg = CanineConfig.from_dict({**cfg.to_dict(), **overrides}, strict=True)
        return cls(cfg, phase=phase)

    @classmethod
    def from_pretrained(cls, path: str, phase: str = "train", strict: bool = True, **overrides) -> "Canine":
        """Load a Canine checkpoint (Hugging Face ``model.safetensors`` + ``config.json``, or paddlepalm's)."""
        from paddlepalm.backbone.weights import load_state_into, read_checkpoint

        config, state, report = read_checkpoint(path)
        if not isinstance(config, CanineConfig):
            raise CheckpointError("%s: model_type %r is not a Canine checkpoint"
                                  % (config.source_file or path, config.model_type))
        if overrides:
            source = config.source_file
            config = CanineConfig.from_dict({**config.to_dict(), **overrides}, strict=True)
            config.source_file = source
        model = cls(config, phase=phase)
        model.load_report = load_state_into(model, state, report, strict=strict)
        return model

    def load_pretrained_weights(self, path: str, strict: bool = True):
        from paddlepalm.backbone.weights import load_state_into, read_checkpoint

        _, state, report = read_checkpoint(path)
        self.load_report = load_state_into(self, state, report, strict=strict)
        return self.load_report

    def save_pretrained(self, path: str, tokenizer=None) -> str:
        from paddlepalm.backbone.weights import save_native

        return save_native(self, path, extra_files=tuple(tokenizer.files) if tokenizer is not None else ())

    def check_checkpoint(self, state: Dict[str, np.ndarray], weights_file: str) -> None:
        """Compare the config's Canine-specific settings with the tensors; name file and key."""
        cfg = self.config
        config_file = cfg.source_file or "the Canine config"
        problems: List[str] = []

        def kernel(name):
            value = state.get(name)
            return None if value is None or value.ndim != 3 else int(value.shape[2])

        for key, name in (("downsampling_rate", "chars_to_molecules.conv.weight"),
                          ("upsampling_kernel_size", "projection.conv.weight")):
            found = kernel(name)
            if found is not None and found != getattr(cfg, key):
                problems.append("key %r is %d but %s: tensor %r has kernel size %d"
                                % (key, getattr(cfg, key), weights_file, name, found))
        tables = sorted(int(k.split(".")[2]) for k in state if k.startswith("embeddings.hash_embeddings."))
        if tables and len(tables) != cfg.num_hash_functions:
            problems.append("key 'num_hash_functions' is %d but %s holds %d hash embedding tables "
                            "(embeddings.hash_embeddings.N.weight)"
                            % (cfg.num_hash_functions, weights_file, len(tables)))
        for n in tables:
            rows, cols = state["embeddings.hash_embeddings.%d.weight" % n].shape
            if rows != cfg.num_hash_buckets:
                problems.append("key 'num_hash_buckets' is %d but %s: tensor "
                                "'embeddings.hash_embeddings.%d.weight' has %d rows"
                                % (cfg.num_hash_buckets, weights_file, n, rows))
                break
            if len(tables) == cfg.num_hash_functions and cols * cfg.num_hash_functions != cfg.hidden_size:
                problems.append("keys 'hidden_size' / 'num_hash_functions' give %d columns per hash "
                                "table but %s has %d" % (cfg.hidden_size // cfg.num_hash_functions,
                                                         weights_file, cols))
                break
        if problems:
            raise CheckpointError("%s: does not match the checkpoint: %s" % (config_file, "; ".join(problems)))

    # ------------------------------------------------------------------ PALM-style descriptions
    @property
    def inputs_attr(self) -> Dict[str, list]:
        return {"input_ids": [[-1, -1], "int64"], "attention_mask": [[-1, -1], "int64"],
                "token_type_ids": [[-1, -1], "int64"]}

    @property
    def outputs_attr(self) -> Dict[str, list]:
        h = self.config.hidden_size
        return {"sequence_output": [[-1, -1, h], "float32"], "pooled_output": [[-1, h], "float32"]}

    def __repr__(self):
        c = self.config
        return "Canine(layers=%d, hidden=%d, heads=%d, downsampling_rate=%d, hashes=%dx%d)" % (
            c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.downsampling_rate,
            c.num_hash_functions, c.num_hash_buckets)


def _additive(keep, dtype):
    """[B, L] of 1 (keep) / 0 (pad) -> [B, 1, 1, L] additive attention mask.

    The dtype's lowest value, as the reference implementation uses: a block of characters that is
    all padding then attends uniformly (-1e4 would keep its score differences), and since the
    upsampling convolution reads neighbouring characters, that reaches the last real characters.
    """
    return (1.0 - keep.astype(dtype)).unsqueeze([1, 2]) * float(paddle.finfo(dtype).min)
