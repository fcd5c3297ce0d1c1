"""Drop-in ``Linear``, ``LayerNorm`` and ``Dropout`` layers with faster CPU training paths.

Profiling a MiniLM train step on CPU (Paddle 3.3, ``benchmarks/bench_step.py``) showed two Paddle
CPU kernels far off their memory-bound cost:

* the bias gradient of ``F.linear`` is a column reduction (``sum`` over the batch axis) that takes
  ~56 ms for a [4096, 1536] gradient, while the same sum as a [1, 4096] x [4096, 1536] GEMV takes
  ~1 ms; at B=32, L=128 the bias gradients cost more than a third of the step;
* ``F.dropout`` draws its mask one Mersenne-Twister number at a time: ~54 ms for the attention
  probabilities [32, 12, 128, 128], against ~20 ms for a mask drawn with numpy's PCG64;
* the backward of ``F.layer_norm`` takes 12-25 ms at [4096, 384] while its forward takes 0.5 ms;
  the same gradient from a handful of elementwise ops, with every row mean and column sum done
  as a GEMV, takes 2-3x less.

The classes here subclass ``paddle.nn.Linear`` / ``LayerNorm`` / ``Dropout`` (same parameters, same
names, same checkpoints) and switch to the fast path only in dygraph on CPU in float32 (Dropout:
when training); everywhere else (export/``to_static``, GPU, AMP) they run the stock forward.
Dropout masks come from a numpy generator seeded per call from Paddle's own generator, so
``paddle.seed`` keeps runs reproducible.
"""
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer


def cpu_fp32_training(layer: nn.Layer, x) -> bool:
    """True when ``layer`` trains in dygraph on a CPU float32 tensor (where the fast paths apply)."""
    return (layer.training and paddle.in_dynamic_mode() and paddle.is_grad_enabled()
            and x.dtype == paddle.float32 and x.place.is_cpu_place())


class _LinearFunction(PyLayer):
    """``x @ W + b`` whose backward computes the bias gradient as a GEMV."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.needs = (not x.stop_gradient, not weight.stop_gradient, bias is not None and not bias.stop_gradient)
        ctx.has_bias = bias is not None
        k, n = weight.shape
        x2 = x.reshape([-1, k])
        out = paddle.addmm(bias, x2, weight) if bias is not None else paddle.matmul(x2, weight)
        return out.reshape(list(x.shape[:-1]) + [n])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        need_x, need_w, need_b = ctx.needs
        k, n = weight.shape
        g2 = grad.reshape([-1, n])
        dx = paddle.matmul(grad, weight, transpose_y=True) if need_x else None
        dw = paddle.matmul(x.reshape([-1, k]), g2, transpose_x=True) if need_w else None
        if not ctx.has_bias:
            return dx, dw
        db = None
        if need_b:
            db = paddle.matmul(paddle.ones([1, g2.shape[0]], dtype=g2.dtype), g2).reshape([n])
        return dx, dw, db


def _needs_grad(*tensors) -> bool:
    return paddle.is_grad_enabled() and any(t is not None and not t.stop_gradient for t in tensors)


class Linear(nn.Linear):
    """``paddle.nn.Linear`` with a fast bias gradient, and the bias fused into the GEMM (``addmm``,
    ~13% faster than ``F.linear``'s matmul + add at [4096, 384] x [384, 1536]), on CPU float32."""

    def forward(self, input):
        if not (paddle.in_dynamic_mode() and input.dtype == paddle.float32 and self.weight.dtype == paddle.float32
                and input.place.is_cpu_place()):
            return super().forward(input)
        if _needs_grad(input, self.weight, self.bias):
            return _LinearFunction.apply(input, self.weight, self.bias)
        if self.bias is None:
            return super().forward(input)
        k, n = self.weight.shape
        out = paddle.addmm(self.bias, input.reshape([-1, k]), self.weight)
        return out.reshape(list(input.shape[:-1]) + [n])


class _LayerNormFunction(PyLayer):
    """Layer normalisation over the last axis: Paddle's forward kernel, a GEMV-based backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, epsilon):
        h = x.shape[-1]
        out = F.layer_norm(x, [h], weight, bias, epsilon)  # the stock output, bit for bit
        x2 = x.reshape([-1, h])
        avg = paddle.full([h, 1], 1.0 / h, dtype=x.dtype)
        mean = paddle.matmul(x2, avg)
        centred = paddle.addmm(x2, mean, paddle.ones([1, h], dtype=x.dtype), beta=1.0, alpha=-1.0)
        rstd = paddle.rsqrt(paddle.matmul(centred * centred, avg) + epsilon)
        ctx.save_for_backward(centred * rstd, rstd, weight)
        ctx.shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        normed, rstd, weight = ctx.saved_tensor()
        h = normed.shape[1]
        g2 = grad.reshape([-1, h])
        ones = paddle.ones([1, g2.shape[0]], dtype=g2.dtype)
        d_bias = paddle.matmul(ones, g2).reshape([h])
        d_weight = paddle.matmul(ones, g2 * normed).reshape([h])
        gx = g2 * weight
        avg = paddle.full([h, 1], 1.0 / h, dtype=g2.dtype)
        # dx = rstd * (gx - mean(gx) - normed * mean(gx * normed)), row means as GEMVs
        dx = paddle.addmm(gx, paddle.matmul(gx, avg), paddle.ones([1, h], dtype=g2.dtype), beta=1.0, alpha=-1.0)
        dx = (dx - normed * paddle.matmul(gx * normed, avg)) * rstd
        return dx.reshape(ctx.shape), d_weight, d_bias


class LayerNorm(nn.LayerNorm):
    """``paddle.nn.LayerNorm`` whose backward is 2-3x faster on CPU float32 (same forward output)."""

    def forward(self, input):
        if (len(self._normalized_shape) != 1 or self.weight is None or self.bias is None
                or not (paddle.in_dynamic_mode() and input.dtype == paddle.float32
                        and self.weight.dtype == paddle.float32 and input.place.is_cpu_place())
                or not _needs_grad(input, self.weight, self.bias)):
            return super().forward(input)
        return _LayerNormFunction.apply(input, self.weight, self.bias, float(self._epsilon))


def _paddle_seed() -> int:
    """A 62-bit seed drawn from Paddle's CPU generator (so ``paddle.seed`` governs the masks)."""
    hi, lo = paddle.randint(0, 2 ** 31 - 1, [2], dtype="int64").tolist()
    return (hi << 31) | lo


class Dropout(nn.Dropout):
    """``paddle.nn.Dropout`` ('upscale_in_train', no axis) with masks drawn by numpy on CPU."""

    def forward(self, input):
        if not self.training and self.mode == "upscale_in_train" and paddle.in_dynamic_mode():
            return input  # identity at inference (F.dropout would still run a copy kernel)
        p = float(self.p) if not isinstance(self.p, paddle.Tensor) else None
        if (p is None or not 0.0 < p < 1.0 or self.axis is not None or self.mode != "upscale_in_train"
                or self.inplace or not cpu_fp32_training(self, input)):
            return super().forward(input)
        rng = np.random.default_rng(_paddle_seed())
        mask = rng.random(tuple(input.shape), dtype=np.float32)
        np.multiply(mask >= np.float32(p), np.float32(1.0 / (1.0 - p)), out=mask)
        return input * paddle.to_tensor(mask, place=input.place)


__all__ = ["Linear", "LayerNorm", "Dropout", "cpu_fp32_training"]
