"""The trained network: one shared encoder and one head per task (a shared head counts once)."""
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from paddlepalm.engine.spec import TaskSpec


class MultiTaskNetwork:
    """``backbone`` + each task's head, with stable structured parameter names."""

    def __init__(self, backbone, tasks: Sequence[TaskSpec], extra_parameters: Sequence[Tuple[str, object]] = ()):
        self.backbone = backbone
        self.tasks = list(tasks)
        # trained with the model but not part of it (a distiller's projections, a balancer's weights)
        self.extra_parameters = list(extra_parameters)

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
        for n, p in self.extra_parameters:
            if id(p) not in seen:
                seen.add(id(p))
                yield n, p

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
        return self.forward_shared([task], batch)[0]

    def forward_shared(self, tasks: Sequence[TaskSpec], batch, encoder_options: Optional[Dict[str, bool]] = None,
                       transform: Optional[Callable] = None) -> List[Dict[str, object]]:
        """ONE encoder pass over ``batch``, then every task's head on it (tasks labelling the same
        inputs); each head's outputs, in the order of ``tasks``.

        ``encoder_options`` go to the encoder (e.g. ``output_hidden_states``); ``transform(task,
        tensors, outputs, encoder_output)`` may rewrite each task's outputs (a distiller adds its
        loss terms to ``outputs['loss']``)."""
        from paddlepalm.forward import encoder_inputs, head_encoder_options, to_tensors

        tensors = to_tensors(batch)
        options = head_encoder_options([t.head for t in tasks], encoder_options, self.backbone)
        encoded = self.backbone(**encoder_inputs(tensors, self.backbone), **options)
        outputs = [t.head(encoded, tensors) for t in tasks]
        if transform is not None:
            outputs = [transform(t, tensors, out, encoded) for t, out in zip(tasks, outputs)]
        return outputs
