"""The trained network: one shared encoder and one head per task (a shared head counts once)."""
from typing import Dict, Iterator, Sequence, Tuple

from paddlepalm.engine.spec import TaskSpec


class MultiTaskNetwork:
    """``backbone`` + each task's head, with stable structured parameter names."""

    def __init__(self, backbone, tasks: Sequence[TaskSpec]):
        self.backbone = backbone
        self.tasks = list(tasks)

    def owners(self) -> Iterator[TaskSpec]:
        """The tasks that own a head (not those reusing another's)."""
        return (t for t in self.tasks if t.head_owner == t.name)

    def named_parameters(self) -> Iterator[Tuple[str, object]]:
        """``backbone.*`` then ``heads.<owner>.*`` (a parameter shared by two modules once)."""
        seen = set()
        for n, p in self.backbone.named_parameters():
            seen.add(id(p))
            yield "backbone." + n, p
        for t in self.owners():
            for n, p in t.head.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield "heads.%s.%s" % (t.name, n), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def head_state(self) -> Dict[str, object]:
        """Every head's parameters keyed ``<owner>.<param>`` (the saved ``heads.pdparams``)."""
        return {"%s.%s" % (t.name, k): v for t in self.owners() for k, v in t.head.state_dict().items()}

    def train_task(self, task: TaskSpec) -> None:
        self.backbone.train()
        task.head.train()

    def forward(self, task: TaskSpec, batch):
        """Encoder then ``task``'s head on a numpy batch; the head's outputs (with ``'loss'``)."""
        from paddlepalm.forward import run_task, to_tensors

        return run_task(self.backbone, task.head, to_tensors(batch))
