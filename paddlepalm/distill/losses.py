"""Distillation losses: pure functions on Paddle tensors.

Output-level (the teacher's predictions as soft labels):

* :func:`soft_label_kd` -- KL(teacher || student) or the soft cross-entropy between the two
  distributions at temperature ``T``, over the last axis, averaged over the rows a ``mask`` keeps;
  optionally multiplied by ``T**2`` (Hinton et al.) so its gradients keep their size as ``T`` grows.
  Token-level KD for sequence labelling is this function on the per-word emissions with the word
  mask; MLM-logit KD is this function on the vocabulary logits of the masked positions.
* :func:`span_kd` -- MRC: the same on the start and the end distributions over the context tokens.

Intermediate (hidden states / attention maps, see :data:`MATCH_LOSSES`): ``mse``, ``cosine`` and
``attention_kl``, each ``fn(student_feature, teacher_feature, mask)`` with features ``[B, L, D]``
(hidden states, embeddings) or ``[B, heads, L, L]`` (attention probabilities) and ``mask``
``[B, L]`` marking real tokens (query positions for attention). Teacher tensors are treated as
constants: pass them without gradient (the :class:`~paddlepalm.distill.teacher.Teacher` does).
"""
from typing import Callable, Dict, Optional

import paddle
import paddle.nn.functional as F

KD_LOSSES = ("kl", "soft_ce")
DISTRIBUTIONS = ("softmax", "sigmoid")
MASKED_LOGIT = -1e9  # logits outside a span mask: probability exactly 0 at any temperature
_EPS = 1e-12


def masked_mean(values: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """Mean of ``values`` over the positions where ``mask`` (same shape, bool or 0/1) is set."""
    if mask is None:
        return values.mean()
    maskf = mask.astype(values.dtype)
    return (values * maskf).sum() / maskf.sum().clip(min=1.0)


def soft_label_kd(student_logits: paddle.Tensor, teacher_logits: paddle.Tensor,
                  temperature: float = 1.0, mask: Optional[paddle.Tensor] = None, loss: str = "kl",
                  scale_by_t2: bool = True, distribution: str = "softmax") -> paddle.Tensor:
    """Soft-label distillation loss between logits ``[..., C]``; scalar.

    ``loss='kl'``: ``sum_c p_t (log p_t - log p_s)``; ``'soft_ce'``: ``-sum_c p_t log p_s`` (same
    gradients, differs by the teacher's entropy), with ``p = softmax(logits / T)``.
    ``distribution='sigmoid'`` treats each of the C logits as its own yes/no distribution
    (multi-label heads) and averages over C instead of summing. ``mask`` (shape ``[...]``)
    selects the rows that count (padding rows/words excluded); the result is their mean.
    """
    if loss not in KD_LOSSES:
        raise ValueError("unknown KD loss %r; expected one of %s" % (loss, ", ".join(KD_LOSSES)))
    if distribution not in DISTRIBUTIONS:
        raise ValueError("unknown distribution %r; expected one of %s"
                         % (distribution, ", ".join(DISTRIBUTIONS)))
    if temperature <= 0:
        raise ValueError("temperature must be > 0, got %r" % (temperature,))
    s = student_logits / temperature
    t = teacher_logits.astype(student_logits.dtype) / temperature
    if distribution == "softmax":
        log_ps, log_pt = F.log_softmax(s, axis=-1), F.log_softmax(t, axis=-1)
        pt = paddle.exp(log_pt)
        per_row = (pt * ((log_pt if loss == "kl" else 0.0) - log_ps)).sum(axis=-1)
    else:
        log_ps, log_qs = F.log_sigmoid(s), F.log_sigmoid(-s)  # log p, log (1 - p)
        log_pt, log_qt = F.log_sigmoid(t), F.log_sigmoid(-t)
        pt, qt = paddle.exp(log_pt), paddle.exp(log_qt)
        if loss == "kl":
            per_class = pt * (log_pt - log_ps) + qt * (log_qt - log_qs)
        else:
            per_class = -(pt * log_ps + qt * log_qs)
        per_row = per_class.mean(axis=-1)
    value = masked_mean(per_row, mask)
    return value * (temperature ** 2) if scale_by_t2 else value


def token_kd(student_emissions: paddle.Tensor, teacher_emissions: paddle.Tensor,
             word_mask: paddle.Tensor, temperature: float = 1.0, loss: str = "kl",
             scale_by_t2: bool = True) -> paddle.Tensor:
    """Sequence labelling: :func:`soft_label_kd` per word on emissions ``[B, W, C]``, padding
    words (``word_mask`` ``[B, W]`` false) excluded. With a CRF head these are the emissions the
    CRF scores, not the CRF's marginals (see docs/distillation.md)."""
    return soft_label_kd(student_emissions, teacher_emissions, temperature, word_mask, loss, scale_by_t2)


def span_kd(student_start: paddle.Tensor, student_end: paddle.Tensor, teacher_start: paddle.Tensor,
            teacher_end: paddle.Tensor, context_mask: paddle.Tensor, temperature: float = 1.0,
            loss: str = "kl", scale_by_t2: bool = True) -> paddle.Tensor:
    """MRC: mean of the start and end :func:`soft_label_kd` over token positions ``[B, L]``.

    Positions outside ``context_mask`` (question, specials, padding) get probability 0 in both
    distributions; rows without any context token are skipped.
    """
    inside = context_mask.astype("bool")
    rows = inside.any(axis=-1)

    def kd(student, teacher):
        far = paddle.full_like(student, MASKED_LOGIT)
        return soft_label_kd(paddle.where(inside, student, far),
                             paddle.where(inside, teacher.astype(student.dtype), far),
                             temperature, rows, loss, scale_by_t2)

    return (kd(student_start, teacher_start) + kd(student_end, teacher_end)) / 2


def mlm_kd(student_word_logits: paddle.Tensor, teacher_word_logits: paddle.Tensor,
           temperature: float = 1.0, loss: str = "kl", scale_by_t2: bool = True) -> paddle.Tensor:
    """Masked LM: :func:`soft_label_kd` on vocabulary logits ``[N, V]`` of the N masked positions."""
    if student_word_logits.shape[0] == 0:
        return student_word_logits.sum() * 0.0
    return soft_label_kd(student_word_logits, teacher_word_logits, temperature, None, loss, scale_by_t2)


# ---------------------------------------------------------------------- intermediate matches
def _as_token_rows(feature: paddle.Tensor) -> paddle.Tensor:
    """``[B, L, D]`` stays; attention ``[B, h, L, L]`` -> ``[B, L, h * L]`` (one row per query)."""
    if len(feature.shape) == 4:
        b, h, l, k = feature.shape
        return feature.transpose([0, 2, 1, 3]).reshape([b, l, h * k])
    return feature


def _same_heads(student: paddle.Tensor, teacher: paddle.Tensor):
    """Attention maps with different head counts are compared head-averaged."""
    if len(student.shape) == 4 and student.shape[1] != teacher.shape[1]:
        return student.mean(axis=1, keepdim=True), teacher.mean(axis=1, keepdim=True)
    return student, teacher


def mse_match(student: paddle.Tensor, teacher: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """Mean squared difference per token (over the feature axis), averaged over real tokens."""
    student, teacher = _same_heads(student, teacher)
    diff = _as_token_rows(student) - _as_token_rows(teacher).astype(student.dtype)
    return masked_mean((diff * diff).mean(axis=-1), mask)


def cosine_match(student: paddle.Tensor, teacher: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """``1 - cos(student, teacher)`` per token, averaged over real tokens."""
    if len(student.shape) != 3:
        raise ValueError("the cosine loss compares hidden states [B, L, D], got shape %s" % (student.shape,))
    cos = F.cosine_similarity(student, teacher.astype(student.dtype), axis=-1, eps=1e-8)
    return masked_mean(1.0 - cos, mask)


def attention_kl_match(student: paddle.Tensor, teacher: paddle.Tensor,
                       mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """KL(teacher || student) of each query's attention distribution ``[B, h, L, L]`` (over keys),
    averaged over heads and real query tokens (MiniLM's attention transfer)."""
    if len(student.shape) != 4:
        raise ValueError("attention_kl compares attention maps [B, heads, L, L], got shape %s"
                         % (student.shape,))
    student, teacher = _same_heads(student, teacher)
    teacher = teacher.astype(student.dtype)
    per_query = (teacher * (paddle.log(teacher.clip(min=_EPS)) - paddle.log(student.clip(min=_EPS)))).sum(axis=-1)
    return masked_mean(per_query.mean(axis=1), mask)


MatchLoss = Callable[[paddle.Tensor, paddle.Tensor, Optional[paddle.Tensor]], paddle.Tensor]
MATCH_LOSSES: Dict[str, MatchLoss] = {"mse": mse_match, "cosine": cosine_match,
                                      "attention_kl": attention_kl_match}
# which losses make sense for which feature
FEATURE_LOSSES = {"hidden": ("mse", "cosine"), "embeddings": ("mse", "cosine"),
                  "attention": ("mse", "attention_kl")}
