"""Reference values for reptok's engine parity tests, computed by PyTorch itself.

Writes test/data/ops.safetensors: for every case, its inputs (`<case>.in.<i>`), outputs (`<case>.out.<j>`), the
upstream gradients fed to backward (`<case>.gout.<j>`) and the resulting input gradients (`<case>.grad.<i>`).
test/engine/ops-parity.test.ts defines the same cases in TypeScript and compares.

Run with Debian's PyTorch:  /usr/bin/python3 tools/reference/make_op_cases.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import save  # noqa: E402

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "data", "ops.safetensors")
g = torch.Generator().manual_seed(1234)


def randn(*s):
    return torch.randn(*s, generator=g)


def rand(*s):
    return torch.rand(*s, generator=g)


def pos(*s):  # strictly positive inputs for sqrt/log/pow
    return torch.rand(*s, generator=g) + 0.5


def idx(high, *s):
    return torch.randint(0, high, s, generator=g)


def sdpa(q, k, v, mask=None, causal=False):
    # The math formula reptok implements (libtorch 1.13 has no fused attention).
    attn = (q * (1 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if causal:
        L, S = attn.shape[-2:]
        attn = attn.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
    if mask is not None:
        attn = attn.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else attn + mask
    return attn.softmax(-1) @ v


def seeded(seed, fn):
    def run(*a):
        torch.manual_seed(seed)
        return fn(*a)
    return run


CASES = {}


def case(name, fn, *inputs, grad=True):
    CASES[name] = (fn, list(inputs), grad)


# ---- elementwise arithmetic ------------------------------------------------------------------------------------
case("add_broadcast", lambda a, b: a + b, randn(3, 4), randn(4))
case("add_alpha", lambda a, b: torch.add(a, b, alpha=2), randn(3, 4), randn(3, 4))
case("add_scalar", lambda a: a + 1.5, randn(5))
case("sub", lambda a, b: a - b, randn(2, 3), randn(2, 1))
case("rsub_scalar", lambda a: 2 - a, randn(4))
case("mul", lambda a, b: a * b, randn(2, 3, 4), randn(3, 1))
case("div", lambda a, b: a / b, randn(3, 4), pos(3, 4))
case("div_floor", lambda a, b: torch.div(a, b, rounding_mode="floor"), randn(6) * 5, pos(6), grad=False)
case("int_mul_scalar", lambda a: a * 3, idx(10, 5), grad=False)
case("int_div_true", lambda a: a / 2, idx(10, 5), grad=False)
case("pow_scalar", lambda a: a ** 2.5, pos(4, 3))
case("pow_tensor", lambda a, b: a ** b, pos(4), randn(4))
case("maximum", lambda a, b: torch.maximum(a, b), randn(3, 4), randn(3, 4))
case("minimum", lambda a, b: torch.minimum(a, b), randn(3, 4), randn(4))
case("atan2", lambda a, b: torch.atan2(a, b), randn(5), randn(5))
case("remainder", lambda a: torch.remainder(a, 1.5), randn(6) * 3)
case("lerp_scalar", lambda a, b: torch.lerp(a, b, 0.3), randn(4), randn(4))
case("lerp_tensor", lambda a, b, w: torch.lerp(a, b, w), randn(4), randn(4), rand(4))
case("addcmul", lambda a, b, c: torch.addcmul(a, b, c, value=0.5), randn(3), randn(3), randn(3))
case("addcdiv", lambda a, b, c: torch.addcdiv(a, b, c, value=-2), randn(3), randn(3), pos(3))
case("clamp", lambda a: a.clamp(-0.5, 0.7), randn(10))
case("clamp_min", lambda a: a.clamp(min=0.1), randn(10))
case("where", lambda c, a, b: torch.where(c > 0, a, b), randn(3, 4), randn(3, 4), randn(4))
case("where_scalar", lambda c, a: torch.where(c > 0, a, torch.zeros(())), randn(6), randn(6))

# ---- elementwise transcendental --------------------------------------------------------------------------------
for name, fn, make in [
    ("neg", torch.neg, randn), ("abs", torch.abs, randn), ("sqrt", torch.sqrt, pos), ("rsqrt", torch.rsqrt, pos),
    ("exp", torch.exp, randn), ("expm1", torch.expm1, randn), ("log", torch.log, pos), ("log1p", torch.log1p, pos),
    ("sin", torch.sin, randn), ("cos", torch.cos, randn), ("tanh", torch.tanh, randn), ("sigmoid", torch.sigmoid, randn),
    ("erf", torch.erf, randn), ("reciprocal", torch.reciprocal, pos), ("square", torch.square, randn),
    ("relu", torch.relu, randn), ("sign", torch.sign, randn), ("floor", torch.floor, randn), ("round", torch.round, randn),
]:
    case(name, fn, make(3, 5))
case("erfinv", torch.erfinv, rand(3, 5) * 1.8 - 0.9)

# ---- comparisons and logic -------------------------------------------------------------------------------------
case("eq", lambda a, b: a == b, idx(3, 8).float(), idx(3, 8).float(), grad=False)
case("lt", lambda a, b: a < b, randn(8), randn(8), grad=False)
case("ge_scalar", lambda a: a >= 0.2, randn(8), grad=False)
case("logical_and", lambda a, b: torch.logical_and(a > 0, b > 0), randn(8), randn(8), grad=False)
case("isnan", lambda a: torch.isnan(torch.log(a)), randn(8), grad=False)

# ---- reductions ------------------------------------------------------------------------------------------------
case("sum_all", lambda a: a.sum(), randn(3, 4))
case("sum_dims_keep", lambda a: a.sum(dim=(0, 2), keepdim=True), randn(2, 3, 4))
case("mean_dim", lambda a: a.mean(1), randn(3, 4, 2))
case("var_dim", lambda a: a.var(1), randn(3, 6))
case("var_correction0_keep", lambda a: torch.var(a, dim=-1, unbiased=False, keepdim=True), randn(3, 6))
case("std_all", lambda a: a.std(), randn(4, 5))
case("max_all", lambda a: a.max(), randn(4, 5))
case("max_dim", lambda a: tuple(a.max(dim=1)), randn(4, 5))
case("min_dim_keep", lambda a: tuple(a.min(dim=0, keepdim=True)), randn(4, 5))
case("argmax", lambda a: a.argmax(dim=1), randn(4, 5), grad=False)
case("argmax_all", lambda a: a.argmax(), randn(4, 5), grad=False)
case("norm_all", lambda a: torch.linalg.vector_norm(a), randn(4, 5))
case("norm_dim_keep", lambda a: torch.linalg.vector_norm(a, 2, dim=-1, keepdim=True), randn(4, 5))
case("norm_l1_dim", lambda a: torch.linalg.vector_norm(a, 1, dim=0), randn(4, 5))
case("logsumexp", lambda a: torch.logsumexp(a, dim=1), randn(3, 7))
case("prod_dim", lambda a: a.prod(1), pos(3, 4))
case("cumsum", lambda a: a.cumsum(1), randn(3, 4))

# ---- linear algebra --------------------------------------------------------------------------------------------
case("matmul_batched_broadcast", lambda a, b: a @ b, randn(2, 3, 4, 5), randn(5, 6))
case("matmul_vec", lambda a, b: a @ b, randn(3, 4), randn(4))
case("mm", torch.mm, randn(3, 4), randn(4, 2))
case("bmm", torch.bmm, randn(2, 3, 4), randn(2, 4, 5))
case("linear", F.linear, randn(2, 5, 4), randn(3, 4), randn(3))
case("linear_nobias", lambda x, w: F.linear(x, w), randn(6, 4), randn(3, 4))
case("einsum", lambda a, b: torch.einsum("bij,bjk->bik", a, b), randn(2, 3, 4), randn(2, 4, 2))
case("einsum_outer", lambda a, b: torch.einsum("i,j->ij", a, b), randn(3), randn(4))
case("cosine_similarity", lambda a, b: F.cosine_similarity(a, b, dim=-1), randn(4, 8), randn(4, 8))

# ---- shapes, views and indexing --------------------------------------------------------------------------------
case("reshape_permute", lambda a: a.reshape(2, 3, 4).permute(2, 0, 1).contiguous() * 2, randn(6, 4))
case("transpose_flatten", lambda a: a.transpose(0, 1).flatten(1), randn(2, 3, 4))
case("unflatten", lambda a: a.unflatten(1, (2, 3)) * 3, randn(4, 6))
case("squeeze_unsqueeze", lambda a: a.squeeze(1).unsqueeze(0) + 1, randn(3, 1, 4))
case("expand", lambda a: a.expand(3, 4, 5) * 1.5, randn(4, 1))
case("repeat", lambda a: a.repeat(2, 3), randn(2, 3))
case("narrow", lambda a: a.narrow(1, 1, 2), randn(3, 4))
case("select", lambda a: a.select(1, 2), randn(3, 4, 2))
case("slice_step", lambda a: a[:, 1::2], randn(3, 7))
case("slice_neg", lambda a: a[-2:, :-1], randn(4, 5))
case("index_select", lambda a, i: a.index_select(1, i), randn(3, 5), idx(5, 4))
case("gather", lambda a, i: a.gather(1, i), randn(3, 5), idx(5, 3, 2))
case("scatter_src", lambda a, i, s: a.scatter(1, i, s), randn(3, 5), torch.tensor([[0, 1], [2, 3], [4, 0]]), randn(3, 2))
case("scatter_add", lambda a, i, s: a.scatter_add(0, i, s), randn(3, 4), idx(3, 2, 4), randn(2, 4))
case("masked_fill", lambda a, m: a.masked_fill(m > 0, -1.0), randn(4, 5), randn(4, 5))
case("index_adv", lambda a, i: a[i], randn(5, 3), idx(5, 4))
case("index_two", lambda a, i, j: a[i, j], randn(5, 3), idx(5, 4), idx(3, 4))
case("cat", lambda a, b: torch.cat([a, b], 1), randn(2, 3), randn(2, 2))
case("stack", lambda a, b: torch.stack([a, b], -1), randn(2, 3), randn(2, 3))
case("chunk", lambda a: tuple(a.chunk(3, dim=1)), randn(2, 7))
case("split_sizes", lambda a: tuple(a.split([1, 3], dim=0)), randn(4, 2))
case("split_size", lambda a: tuple(a.split(2, dim=1)), randn(2, 5))
case("unbind", lambda a: tuple(a.unbind(1)), randn(2, 3))
case("roll", lambda a: a.roll(shifts=(1, -2), dims=(0, 1)), randn(3, 4))
case("flip", lambda a: a.flip(0, 1), randn(3, 4))
case("tril", lambda a: a.tril(-1), randn(4, 4))

# ---- neural-network functions ----------------------------------------------------------------------------------
case("gelu", F.gelu, randn(3, 6))
case("gelu_tanh", lambda a: F.gelu(a, approximate="tanh"), randn(3, 6))
case("silu", F.silu, randn(3, 6))
case("softmax", lambda a: a.softmax(-1), randn(3, 6))
case("log_softmax", lambda a: a.log_softmax(0), randn(3, 6))
case("layer_norm", lambda x, w, b: F.layer_norm(x, (6,), w, b, 1e-6), randn(2, 3, 6), randn(6), randn(6))
case("layer_norm_noaffine", lambda x: F.layer_norm(x, (3, 6)), randn(2, 3, 6))
case("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b, 1e-5), randn(2, 4, 3, 3), randn(4), randn(4))
case("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), randn(2, 3, 8, 8), randn(4, 3, 3, 3), randn(4))
case("conv2d_groups", lambda x, w: F.conv2d(x, w, None, padding=1, groups=2), randn(1, 4, 5, 5), randn(6, 2, 3, 3))
case("conv2d_same", lambda x, w: F.conv2d(x, w, None, padding="same"), randn(1, 2, 6, 6), randn(3, 2, 3, 3))
case("conv2d_patch14", lambda x, w, b: F.conv2d(x, w, b, stride=14), randn(1, 3, 28, 42), randn(5, 3, 14, 14), randn(5))
case("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1), randn(1, 3, 4, 4), randn(3, 2, 3, 3), randn(2))
case("conv1d", lambda x, w, b: F.conv1d(x, w, b), randn(2, 3, 5), randn(9, 3, 1), randn(9))
case("avg_pool2d", lambda x: F.avg_pool2d(x, 2), randn(1, 2, 6, 6))
case("avg_pool2d_stride_pad", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), randn(1, 2, 7, 7))
case("max_pool2d", lambda x: F.max_pool2d(x, 2), randn(1, 2, 6, 6))
case("interp_nearest_size", lambda x: F.interpolate(x, size=(7, 5), mode="nearest"), randn(1, 2, 4, 4))
case("interp_bilinear_scale", lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False), randn(1, 2, 4, 6))
case("interp_bilinear_align", lambda x: F.interpolate(x, size=(6, 9), mode="bilinear", align_corners=True), randn(1, 2, 4, 6))
case("interp_bilinear_down", lambda x: F.interpolate(x, size=(5, 5), mode="bilinear", align_corners=False), randn(1, 3, 16, 16))
case("interp_bilinear_aa_down", lambda x: F.interpolate(x, size=(5, 6), mode="bilinear", antialias=True), randn(1, 3, 16, 16))
case("interp_bicubic_size", lambda x: F.interpolate(x, size=(9, 7), mode="bicubic", align_corners=False), randn(1, 2, 5, 5))
case("interp_bicubic_aa_size", lambda x: F.interpolate(x, size=(4, 6), mode="bicubic", antialias=True), randn(1, 2, 9, 9))
# DINOv2's classic position-embedding resize: a scale factor (h0 + 0.1) / M, not an output size.
case("interp_bicubic_offset_scale", lambda x: F.interpolate(x, scale_factor=(4.1 / 9, 6.1 / 9), mode="bicubic"), randn(1, 3, 9, 9))
case("interp_area", lambda x: F.interpolate(x, size=(3, 3), mode="area"), randn(1, 2, 9, 9))
case("pad_constant", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), randn(1, 2, 3, 3))
case("pad_reflect", lambda x: F.pad(x, (1, 1, 2, 2), mode="reflect"), randn(1, 2, 4, 4))
case("embedding", lambda w, i: F.embedding(i, w), randn(10, 4), idx(10, 2, 3))
case("sdpa", lambda q, k, v: sdpa(q, k, v), randn(2, 3, 5, 4), randn(2, 3, 6, 4), randn(2, 3, 6, 4))
case("sdpa_bool_mask", lambda q, k, v, m: sdpa(q, k, v, mask=m > -0.5), randn(2, 5, 4), randn(2, 5, 4), randn(2, 5, 4), randn(2, 5, 5))
case("sdpa_causal", lambda q, k, v: sdpa(q, k, v, causal=True), randn(1, 2, 4, 8), randn(1, 2, 4, 8), randn(1, 2, 4, 8))
case("mse_loss", F.mse_loss, randn(3, 4), randn(3, 4))
case("mse_loss_none", lambda a, b: F.mse_loss(a, b, reduction="none"), randn(3, 4), randn(3, 4))
case("cross_entropy", lambda x, t: F.cross_entropy(x, t), randn(5, 7), idx(7, 5))
case("cross_entropy_smooth_sum", lambda x, t: F.cross_entropy(x, t, reduction="sum", label_smoothing=0.1), randn(5, 7), idx(7, 5))
case("normalize", lambda x: F.normalize(x, dim=-1), randn(3, 5))
case("dropout_seeded", seeded(7, lambda x: F.dropout(x, 0.3, training=True)), randn(4, 6))

# ---- random numbers (same seed, same stream as PyTorch) --------------------------------------------------------
case("rand_randn", seeded(0, lambda: torch.randn(6)), grad=False)
case("rand_rand", seeded(1, lambda: torch.rand(2, 3)), grad=False)
case("rand_randint", seeded(2, lambda: torch.randint(0, 10, (8,))), grad=False)
case("rand_normal", seeded(3, lambda: torch.normal(2.0, 3.0, (5,))), grad=False)
case("rand_randperm", seeded(4, lambda: torch.randperm(8)), grad=False)
case("rand_generator", lambda: torch.randn(5, generator=torch.Generator().manual_seed(5)), grad=False)
case("rand_uniform_", seeded(6, lambda: torch.empty(4).uniform_(-2, 3)), grad=False)


def main():
    out = {}
    for name, (fn, inputs, want_grad) in CASES.items():
        leaves = [x.detach().clone().requires_grad_(want_grad and x.is_floating_point()) for x in inputs]
        res = fn(*leaves)
        outs = list(res) if isinstance(res, (tuple, list)) else [res]
        for i, x in enumerate(inputs):
            out[f"{name}.in.{i}"] = x
        for j, o in enumerate(outs):
            out[f"{name}.out.{j}"] = o.detach()
        if want_grad:
            diff = [(j, o) for j, o in enumerate(outs) if o.requires_grad]
            gouts = [torch.randn(o.shape, generator=g) for _, o in diff]
            for (j, _), go in zip(diff, gouts):
                out[f"{name}.gout.{j}"] = go
            torch.autograd.backward([o for _, o in diff], gouts)
            for i, leaf in enumerate(leaves):
                if leaf.requires_grad:
                    out[f"{name}.grad.{i}"] = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
    save(OUT, out, {"torch": torch.__version__, "cases": ",".join(CASES)})
    print(f"wrote {len(CASES)} cases ({len(out)} tensors) to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
