"""Mixed precision for the fit loop: fp32 (CPU, default), or fp16 / bf16 autocast on GPU."""
import contextlib
import logging
from typing import Optional

logger = logging.getLogger("paddlepalm")


class MixedPrecision:
    """``amp``: None / 'fp32', 'fp16' (with a dynamic loss scale) or 'bf16'. On CPU AMP is
    refused with a warning and training stays fp32."""

    def __init__(self):
        self.amp: Optional[str] = None
        self.scaler = None

    def configure(self, amp: Optional[str]) -> None:
        import paddle

        if amp in (None, False, "", "none", "fp32"):
            self.amp = None
            return
        if amp not in ("fp16", "bf16"):
            raise ValueError("amp must be None, 'fp16' or 'bf16', got %r" % amp)
        if not paddle.is_compiled_with_cuda() or paddle.device.get_device().startswith("cpu"):
            logger.warning("AMP (%s) needs a GPU; this run is on CPU, so it trains in fp32", amp)
            self.amp = None
            return
        self.amp = amp
        if amp == "fp16" and self.scaler is None:
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)

    def context(self):
        """Autocast for the forward pass (a no-op in fp32)."""
        import paddle

        if not self.amp:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, dtype="bfloat16" if self.amp == "bf16" else "float16", level="O1")

    @property
    def loss_scale(self) -> float:
        """What the loss is multiplied by before backward (1 without fp16 scaling)."""
        return float(self.scaler._scale) if self.scaler is not None else 1.0

    def backward(self, loss) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
