"""Saving and restoring an engine's run: checkpoints, weights, training state."""
import logging
import os

from paddlepalm.engine.checkpoints import (OPTIMIZER_STATE, TRAINER_STATE, checkpoint_name, load_paddle_file,
                                           optimizer_state, prune, read_json, set_optimizer_state, write_json)
from paddlepalm.errors import CheckpointError
from paddlepalm.utils.atomic_dir import atomic_directory

logger = logging.getLogger("paddlepalm")


def save_checkpoint(engine) -> str:
    """Save ``ckpt.step<N>`` (model + optimizer + training state); keep the newest ``keep_last``."""
    import paddle

    from paddlepalm.artifact import save_model

    loop = engine.loop
    path = os.path.join(engine.args.save_path, checkpoint_name(loop.state.global_step))
    kinds = {k.strip() for k in engine.args.save_type.split(",")}

    def write(tmp):
        save_model(tmp, engine.backbone, engine.tasks, engine.tokenizer)
        paddle.save(optimizer_state(loop.optimizer, engine.named_parameters()), os.path.join(tmp, OPTIMIZER_STATE))
        write_json(os.path.join(tmp, TRAINER_STATE), loop.training_state())

    if engine.strategy.is_main:
        if "ckpt" in kinds:
            atomic_directory(path, write)
            prune(engine.args.save_path, engine.args.keep_last)
            logger.info("saved %s", path)
        if "predict" in kinds:
            from paddlepalm.export import export_model

            export_model(engine, os.path.join(engine.args.save_path, "pred.step%d" % loop.state.global_step))
    engine.strategy.barrier()
    return path


def load_weights(engine, path: str) -> None:
    """Load a saved model's / checkpoint's encoder and head weights into this engine."""
    from paddlepalm.artifact import BACKBONE_DIR, HEADS_FILE, load_head_weights, read_head_weights
    from paddlepalm.backbone.weights import load_state_into, read_checkpoint

    backbone_dir = os.path.join(path, BACKBONE_DIR)
    if not os.path.isdir(backbone_dir):
        raise CheckpointError("%s: not a paddlepalm checkpoint (no %s/ folder)" % (path, BACKBONE_DIR))
    _, state, report = read_checkpoint(backbone_dir)
    backbones, heads = engine.weight_targets()
    for b in {id(b): b for b in backbones if b is not None}.values():
        load_state_into(b, state, report)
    head_state = read_head_weights(path)
    for t in engine.tasks:
        for head in {id(h): h for h in heads.get(t.name, []) if h is not None}.values():
            load_head_weights(head, head_state, t.head_owner, os.path.join(path, HEADS_FILE))


def restore_training_state(engine, path: str) -> None:
    """Optimizer, schedule, sampler, reader positions, train state and callbacks from ``path``."""
    loop = engine.loop
    if loop.optimizer is None:
        loop.build_optimizer()
    state = read_json(os.path.join(path, TRAINER_STATE))
    set_optimizer_state(loop.optimizer, engine.named_parameters(),
                        load_paddle_file(os.path.join(path, OPTIMIZER_STATE)), path)
    loop.load_training_state(state)
