"""``TaskSpec``: what a task is -- a name, its readers and head, how often and how much it counts.

A spec knows nothing about the engine that runs it; PALM's ``Trainer`` (in
:mod:`paddlepalm.compat`) is a spec with PALM 2.x's methods on top.
"""
from typing import List, Optional, Sequence, Union


class TaskSpec:
    """One task: ``name``, ``reader`` (train), ``dev_reader``, ``predict_reader``, ``head``,
    ``mix_ratio`` (sampling weight), ``loss_weight``, ``is_aux`` (trained but never the main task)
    and ``reuse_head_with`` (another task whose head this one shares)."""

    def __init__(self, name: str, mix_ratio: float = 1.0, reuse_head_with: Union[None, str, "TaskSpec"] = None,
                 reader=None, head=None, dev_reader=None, predict_reader=None, loss_weight: float = 1.0,
                 is_aux: bool = False):
        if not name or not isinstance(name, str) or "." in name or "/" in name:
            raise ValueError("a task name must be a non-empty string without '.' or '/', got %r" % (name,))
        self.name = name
        self.mix_ratio = float(mix_ratio)
        self.loss_weight = float(loss_weight)
        self.is_aux = is_aux
        self.head_owner = (reuse_head_with.name if isinstance(reuse_head_with, TaskSpec)
                           else reuse_head_with) or name
        self.reader, self.dev_reader, self.predict_reader = reader, dev_reader, predict_reader
        self.head = head

    def __repr__(self):
        return "%s(%r, mix_ratio=%g)" % (type(self).__name__, self.name, self.mix_ratio)


def check_unique_names(tasks: Sequence[TaskSpec]) -> List[TaskSpec]:
    if not tasks:
        raise ValueError("at least one task is needed")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError("task names must be unique, got %s" % names)
    return list(tasks)


def resolve_shared_heads(tasks: Sequence[TaskSpec]) -> None:
    """Give every task that reuses another's head that head; raise on a task without one."""
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        if t.head_owner != t.name:
            owner = by_name.get(t.head_owner)
            if owner is None:
                raise ValueError("task %r reuses the head of unknown task %r" % (t.name, t.head_owner))
            t.head = owner.head
        if t.head is None:
            raise ValueError("task %r has no head" % t.name)


def main_task_name(tasks: Sequence[TaskSpec], requested: Optional[str] = None) -> str:
    """``requested`` (checked), else the first task that is not auxiliary."""
    if requested is not None:
        if requested not in {t.name for t in tasks}:
            raise KeyError("unknown task %r; tasks: %s" % (requested, ", ".join(t.name for t in tasks)))
        return requested
    for t in tasks:
        if not t.is_aux:
            return t.name
    raise ValueError("every task is auxiliary: one task must set the length of training")


def input_groups(tasks: Sequence[TaskSpec]) -> List[List[int]]:
    """Task indices grouped by shared train reader: tasks over the same examples (one reader
    object whose batches carry every task's labels, or views of one such reader, e.g.
    ``JointLabelReader.view``) train with one encoder pass per batch."""
    groups: List[List[int]] = []
    by_reader = {}
    for i, t in enumerate(tasks):
        key = id(getattr(t.reader, "input_source", t.reader))  # views of one reader share its batches
        if t.reader is not None and key in by_reader:
            groups[by_reader[key]].append(i)
        else:
            by_reader[key] = len(groups)
            groups.append([i])
    return groups
