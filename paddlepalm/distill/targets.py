"""What each head type distils: which of its outputs are the teacher's soft labels, and the loss.

A :class:`KDTarget` is built per task around the task's (student) head. ``extract`` picks the
tensors to match from a head's outputs (the same call serves teacher and student), ``loss``
compares them. ``length_axes`` names, per extracted tensor, the axes padded to the batch's
length, so a cache of per-example rows can re-pad them to another batch's width. Adapters are
registered by the head's registry name in :data:`KD_TARGETS`; a user's own head joins with
``KD_TARGETS.register('my_head', MyTarget)``.
"""
from typing import Dict, Tuple

import paddle

from paddlepalm.distill import losses
from paddlepalm.registry import Registry

Tensors = Dict[str, paddle.Tensor]
KD_TARGETS: Registry = Registry("distillation target")


class KDTarget:
    """Base adapter. ``cacheable``: its tensors have one row per feature of the batch."""

    cacheable = True
    length_axes: Dict[str, Tuple[int, ...]] = {}

    def __init__(self, head):
        self.head = head

    def extract(self, head, outputs: Tensors, encoder_output, batch: Tensors) -> Tensors:
        raise NotImplementedError

    def loss(self, student: Tensors, teacher: Tensors, batch: Tensors, temperature: float,
             kd_loss: str, scale_by_t2: bool) -> paddle.Tensor:
        raise NotImplementedError


@KD_TARGETS.register("classify")
class ClassifyTarget(KDTarget):
    """Sentence logits ``[B, C]``; softmax, or per-class sigmoid for ``multi_label`` heads."""

    def extract(self, head, outputs, encoder_output, batch):
        return {"logits": outputs["logits"]}

    def loss(self, student, teacher, batch, temperature, kd_loss, scale_by_t2):
        distribution = "sigmoid" if getattr(self.head, "multi_label", False) else "softmax"
        return losses.soft_label_kd(student["logits"], teacher["logits"], temperature, None,
                                    kd_loss, scale_by_t2, distribution)


@KD_TARGETS.register("match")
class MatchTarget(ClassifyTarget):
    """Pointwise: as Classify. Pairwise: each row's score as a yes/no (sigmoid) distribution,
    over the positive and the negative rows (2B rows for B features: not cacheable)."""

    def __init__(self, head):
        super().__init__(head)
        self.pairwise = getattr(head, "pairwise", False)
        self.cacheable = not self.pairwise

    def extract(self, head, outputs, encoder_output, batch):
        if self.pairwise:
            return {"score": outputs["score"].unsqueeze(-1)}
        return super().extract(head, outputs, encoder_output, batch)

    def loss(self, student, teacher, batch, temperature, kd_loss, scale_by_t2):
        if self.pairwise:
            return losses.soft_label_kd(student["score"], teacher["score"], temperature, None,
                                        kd_loss, scale_by_t2, "sigmoid")
        return super().loss(student, teacher, batch, temperature, kd_loss, scale_by_t2)


@KD_TARGETS.register("sequence_label")
class SequenceLabelTarget(KDTarget):
    """Per-word emissions ``[B, W, C]`` (the CRF's inputs when the head has a CRF)."""

    length_axes = {"logits": (1,)}

    def extract(self, head, outputs, encoder_output, batch):
        return {"logits": outputs["logits"]}

    def loss(self, student, teacher, batch, temperature, kd_loss, scale_by_t2):
        from paddlepalm.head.sequence_label import word_mask

        logits = student["logits"]
        return losses.token_kd(logits, teacher["logits"], word_mask(batch, logits.shape[1]),
                               temperature, kd_loss, scale_by_t2)


@KD_TARGETS.register("mrc")
class MRCTarget(KDTarget):
    """Start and end logits ``[B, L]`` over the window's context tokens."""

    length_axes = {"start_logits": (1,), "end_logits": (1,)}

    def extract(self, head, outputs, encoder_output, batch):
        return {"start_logits": outputs["start_logits"], "end_logits": outputs["end_logits"]}

    def loss(self, student, teacher, batch, temperature, kd_loss, scale_by_t2):
        start = student["start_logits"]
        if "context_start" in batch:
            positions = paddle.arange(start.shape[1], dtype="int64").unsqueeze(0)
            context = (positions >= batch["context_start"].reshape([-1, 1])) & \
                      (positions < batch["context_end"].reshape([-1, 1]))
        else:
            context = batch["attention_mask"].astype("bool")
        return losses.span_kd(start, student["end_logits"], teacher["start_logits"],
                              teacher["end_logits"], context, temperature, kd_loss, scale_by_t2)


@KD_TARGETS.register("mask_lm")
class MaskLMTarget(KDTarget):
    """Vocabulary logits at the masked positions ``[N, V]``. Masks are drawn per batch, so
    nothing is cached. The head returns only the argmax ids, so the logits are recomputed
    from the encoder output with the head's own (tied) projection."""

    cacheable = False

    def extract(self, head, outputs, encoder_output, batch):
        sequence = encoder_output.sequence_output
        hidden = paddle.gather(sequence.reshape([-1, sequence.shape[-1]]), outputs["positions"])
        return {"word_logits": head.word_logits(hidden)}

    def loss(self, student, teacher, batch, temperature, kd_loss, scale_by_t2):
        return losses.mlm_kd(student["word_logits"], teacher["word_logits"], temperature, kd_loss,
                             scale_by_t2)


def target_for(head, task: str) -> KDTarget:
    """The registered adapter for ``head``'s type (error names the task and the head type)."""
    name = getattr(head, "name", None) or type(head).__name__
    if name not in KD_TARGETS:
        raise KeyError("task %r: no distillation target for head type %r; known: %s (register one "
                       "with paddlepalm.distill.KD_TARGETS.register)" % (task, name, ", ".join(KD_TARGETS.names())))
    return KD_TARGETS.get(name)(head)
