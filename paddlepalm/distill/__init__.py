"""Knowledge distillation: a small student from a trained (multi-task) paddlepalm model.

* :class:`Teacher` -- saved model(s), frozen; outputs on the fly or cached per example.
* :func:`student_from_teacher` / :func:`student_from_config` / :func:`build_heads` -- the student.
* :class:`Distiller` -- called by the training loop once per task step:
  ``distiller.loss(task, batch, head_outputs, encoder_output, hard_loss) -> (total, parts)``.
* :mod:`paddlepalm.distill.losses` -- the KD and intermediate losses, pure functions.

See docs/distillation.md.
"""
from paddlepalm.distill.cache import TeacherCache, reader_augments
from paddlepalm.distill.build import Distillation, build_distillation
from paddlepalm.distill.distiller import Distiller, Match
from paddlepalm.distill.losses import (MATCH_LOSSES, attention_kl_match, cosine_match, mlm_kd,
                                       mse_match, soft_label_kd, span_kd, token_kd)
from paddlepalm.distill.run import DistillationCallback, attach
from paddlepalm.distill.schedules import SCHEDULE_KINDS, Schedule
from paddlepalm.distill.student import (build_heads, build_student, check_label_map, check_tokenizer,
                                        check_vocab_size, student_from_config, student_from_teacher)
from paddlepalm.distill.targets import KD_TARGETS, KDTarget
from paddlepalm.distill.teacher import Teacher, freeze

__all__ = ["Distillation", "DistillationCallback", "attach", "build_distillation", "Teacher", "freeze", "Distiller", "Match", "Schedule", "SCHEDULE_KINDS", "TeacherCache",
           "reader_augments", "KD_TARGETS", "KDTarget", "MATCH_LOSSES", "soft_label_kd", "token_kd",
           "span_kd", "mlm_kd", "mse_match", "cosine_match", "attention_kl_match", "build_student",
           "student_from_teacher", "student_from_config", "build_heads", "check_vocab_size",
           "check_tokenizer", "check_label_map"]
