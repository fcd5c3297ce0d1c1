"""Linear-chain CRF: transition and start/end scores over tag sequences.

The score of a tag path ``y`` for emissions ``e`` (``[W, C]``) is
``start[y0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_last]``. Training minimises
the negative log-likelihood ``log Z - score(gold)``, with ``log Z`` from the forward algorithm in
log space (batched in Paddle, one step per position); decoding is Viterbi in numpy. Masks mark
the real positions of each row and must be a prefix (every row has at least one position).
"""
from typing import List

import numpy as np
import paddle
import paddle.nn as nn


_TINY = 1e-300  # floor of a shifted partial sum in float64 (about e^-690)


class LinearChainCRF(nn.Layer):
    """CRF parameters and its loss; ``lr_multiplier`` scales the learning rate of all three."""

    def __init__(self, num_tags: int, lr_multiplier: float = 1.0):
        super().__init__()
        self.num_tags = int(num_tags)

        def param(shape):
            attr = paddle.ParamAttr(learning_rate=lr_multiplier,
                                    initializer=nn.initializer.Constant(0.0))
            return self.create_parameter(shape, attr=attr)

        self.transitions = param([self.num_tags, self.num_tags])  # [from, to]
        self.start = param([self.num_tags])
        self.end = param([self.num_tags])

    def log_partition(self, emissions: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """``log Z`` per row: emissions ``[B, W, C]``, mask ``[B, W]`` -> ``[B]``.

        The forward recursion ``alpha_t[j] = logsumexp_i(alpha[i] + trans[i, j]) + e_t[j]`` runs
        in shifted exp space, ``log(exp(alpha - max_i alpha) @ exp(trans - max_i trans)) +
        both maxima``: one small GEMM per position, in float64 (the tensors are ``[B, C]`` and
        ``[C, C]``), so only score gaps beyond ~690 nats would underflow (such states are
        floored there). The same sum as a broadcast add + ``logsumexp`` over the middle axis hits
        slow Paddle CPU kernels (broadcast add and its gradient, a strided reduction): ~30x slower
        a slot step at B=32, W=14, and more at longer W (benchmarks/profile_step.py).
        """
        dtype = emissions.dtype
        maskf = mask.astype("float64")
        emissions = emissions.astype("float64")
        transitions = self.transitions.astype("float64")
        column_max = transitions.max(axis=0, keepdim=True).detach()  # constant shifts: no gradient
        exp_trans = paddle.exp(transitions - column_max)  # every column has a 1
        alpha = self.start.astype("float64").unsqueeze(0) + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            shift = alpha.max(axis=1, keepdim=True).detach()
            total = paddle.matmul(paddle.exp(alpha - shift), exp_trans).clip(min=_TINY)
            step = maskf[:, t].unsqueeze(1)
            alpha = alpha + step * (paddle.log(total) + shift + column_max + emissions[:, t] - alpha)
        return paddle.logsumexp(alpha + self.end.astype("float64").unsqueeze(0), axis=1).astype(dtype)

    def path_score(self, emissions: paddle.Tensor, tags: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """Score of the given tag paths ``[B, W]`` (values at masked positions are ignored)."""
        batch, width, num_tags = emissions.shape
        maskf = mask.astype(emissions.dtype)
        tags = paddle.where(mask, tags, paddle.zeros_like(tags))
        emitted = paddle.take_along_axis(emissions, tags.unsqueeze(-1), axis=2).squeeze(-1)
        score = (emitted * maskf).sum(axis=1) + paddle.gather(self.start, tags[:, 0])
        if width > 1:
            pair_index = (tags[:, :-1] * num_tags + tags[:, 1:]).reshape([-1])
            moves = paddle.gather(self.transitions.reshape([-1]), pair_index).reshape([batch, width - 1])
            score = score + (moves * maskf[:, 1:]).sum(axis=1)
        last = mask.astype("int64").sum(axis=1, keepdim=True) - 1
        last_tags = paddle.take_along_axis(tags, last, axis=1).squeeze(1)
        return score + paddle.gather(self.end, last_tags)

    def nll(self, emissions: paddle.Tensor, tags: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """Negative log-likelihood of the gold paths, per row ``[B]``."""
        return self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)

    def decode(self, emissions: np.ndarray, lengths: np.ndarray) -> List[List[int]]:
        """Best tag path of each row (cut to its length), with the current parameters."""
        return viterbi_decode(emissions, lengths, self.transitions.numpy(), self.start.numpy(),
                              self.end.numpy())


def viterbi_decode(emissions: np.ndarray, lengths: np.ndarray, transitions: np.ndarray,
                   start: np.ndarray, end: np.ndarray) -> List[List[int]]:
    """Highest-scoring tag paths for emissions ``[B, W, C]`` and row lengths ``[B]`` (>= 1).

    Scores are float64. Rows are visited longest first, so at step ``t`` the rows still running
    are a prefix and the finished ones cost nothing; the candidate scores are laid out
    ``[rows, to, from]`` so the reduction runs over contiguous memory, and each step takes one
    ``argmax`` (the maximum is read at it). Ties go to the lowest previous tag.
    """
    emissions = np.asarray(emissions, dtype=np.float64)
    batch, width, num_tags = emissions.shape
    lengths = np.asarray(lengths).reshape(-1)
    if batch == 0:
        return []
    order = np.argsort(-lengths, kind="stable")  # longest first: the running rows are a prefix
    ordered = lengths[order]
    sorted_emissions = emissions if batch == 1 else emissions[order]
    running = [int(np.count_nonzero(ordered > t)) for t in range(width)]
    into = np.ascontiguousarray(np.asarray(transitions, dtype=np.float64).T)  # [to, from]
    score = np.asarray(start, dtype=np.float64)[None, :] + sorted_emissions[:, 0]
    flat = np.arange(batch * num_tags) * num_tags  # row starts of the [rows * to, from] view
    backpointers = []
    for t in range(1, width):
        n = running[t]
        if n == 0:
            break
        candidates = score[:n, None, :] + into[None]
        candidates += sorted_emissions[:n, t, :, None]
        best_from = candidates.argmax(axis=2)
        score[:n] = candidates.reshape(-1)[flat[:n * num_tags] + best_from.reshape(-1)].reshape(n, num_tags)
        backpointers.append(best_from)
    best = (score + np.asarray(end, dtype=np.float64)[None, :]).argmax(axis=1)
    path = np.empty((batch, len(backpointers) + 1), dtype=np.int64)
    path[:, -1] = best
    for step in range(len(backpointers) - 1, -1, -1):  # finished rows keep their tag
        pointers = backpointers[step]
        n = pointers.shape[0]
        best[:n] = pointers[np.arange(n), best[:n]]
        path[:, step] = best
    rows = path.tolist()  # column t: the tag at position t (a finished row repeats its last tag)
    out: List[List[int]] = [[]] * batch
    for k, b in enumerate(order.tolist()):
        out[b] = rows[k][:max(int(ordered[k]), 0)]
    return out
