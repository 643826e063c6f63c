// The fused RMSNorm with a scale (`reptok::rms_norm`): one pass forward and one backward where eager code runs six
// ATen kernels (square, mean, add, rsqrt, mul, mul), each re-reading the activations. Registered in library.cc.
#include "fused-common.h"

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm with a scale: y = x · (s · rsqrt(mean(x², -1) + eps))
// x (..., W); s (W) for every row, or (B, 1, …, 1, W) with x (B, …, W): one scale row per leading index.
// ---------------------------------------------------------------------------------------------------------------

template <typename T>
struct RmsNormArgs {
  using C = Acc<T>;
  const T *x, *g;     // g: the output gradient (backward only)
  const C *s, *rstd;  // the scale, widened to Acc<T>; rstd: saved by the forward (backward only)
  T* out;             // y or gx
  C *rstdOut, *gs;    // rstdOut: forward only; gs: the scale gradient (backward only)
  int64_t W, perGroup;  // rows per scale row
  double eps;
};

template <typename T>
REPTOK_INLINE const Acc<T>* scaleRow(const RmsNormArgs<T>& a, int64_t i) { return a.s + (i / a.perGroup) * a.W; }

template <typename T>
REPTOK_INLINE void rmsNormRowsBody(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  for (int64_t i = begin; i < end; i++) {
    const T* xr = a.x + i * a.W;
    const C* sr = scaleRow(a, i);
    const C r = C(1) / std::sqrt(dot(xr, xr, a.W) / C(a.W) + C(a.eps));
    a.rstdOut[i] = r;
    T* yr = a.out + i * a.W;
    for (int64_t j = 0; j < a.W; j++) yr[j] = fromAcc<T>(toAcc(xr[j]) * (sr[j] * r));
  }
}
REPTOK_SIMD_KERNEL(rmsNormRows, RmsNormArgs)

template <typename T>
REPTOK_INLINE void rmsNormGradRowsBody(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  for (int64_t i = begin; i < end; i++) {
    const T *xr = a.x + i * a.W, *gr = a.g + i * a.W;
    const C* sr = scaleRow(a, i);
    const C r = a.rstd[i];
    const C k = r * r * r * dot3(gr, sr, xr, a.W) / C(a.W);
    T* o = a.out + i * a.W;
    for (int64_t j = 0; j < a.W; j++) o[j] = fromAcc<T>(r * sr[j] * toAcc(gr[j]) - k * toAcc(xr[j]));
  }
}
REPTOK_SIMD_KERNEL(rmsNormGradRows, RmsNormArgs)

// Tasks are (scale row, block of 64 columns): no two tasks write the same element of the scale gradient.
template <typename T>
REPTOK_INLINE void rmsNormGradScaleBody(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t blocks = (a.W + 63) / 64;
  for (int64_t task = begin; task < end; task++) {
    const int64_t grp = task / blocks, j0 = (task % blocks) * 64, j1 = std::min(a.W, j0 + 64);
    double acc[64] = {0};
    for (int64_t i = grp * a.perGroup; i < (grp + 1) * a.perGroup; i++) {
      const T *xr = a.x + i * a.W, *gr = a.g + i * a.W;
      const Acc<T> r = a.rstd[i];
      for (int64_t j = j0; j < j1; j++) acc[j - j0] += double(toAcc(gr[j]) * toAcc(xr[j]) * r);
    }
    for (int64_t j = j0; j < j1; j++) a.gs[grp * a.W + j] = Acc<T>(acc[j - j0]);
  }
}
REPTOK_SIMD_KERNEL(rmsNormGradScale, RmsNormArgs)

// x float32, float64 or bfloat16; the scale in x's dtype, or float32 for bfloat16 x (RMSNorm's float32 parameter
// next to a bf16 activation under autocast). The kernels read the scale in Acc<T>: a bfloat16 scale (AdaRMSNorm's,
// from a linear under autocast) is widened first — (B, W) elements against x's (B, L, W), one pass over 1/L of x.
struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x0, const Tensor& s0, double eps) {
    const char* op = "reptok::rms_norm";
    checkCpuFloat(x0, op, "x");
    const at::ScalarType acc = accType(x0.scalar_type());
    TORCH_CHECK(s0.device().is_cpu() && (s0.scalar_type() == x0.scalar_type() || s0.scalar_type() == acc), op, ": scale must be a CPU tensor of x's dtype ",
                x0.scalar_type(), x0.scalar_type() == acc ? "" : " or float32", ", got ", s0.scalar_type(), " on ", s0.device());
    TORCH_CHECK(x0.dim() >= 1 && s0.dim() >= 1 && s0.size(-1) == x0.size(-1), op, ": scale ", s0.sizes(), " does not match the last dim of x ", x0.sizes());
    // groups: rows of the scale (1, or B for a per-sample scale), read from its shape: W, and so numel, may be 0
    const int64_t W = x0.size(-1), groups = s0.dim() == x0.dim() && s0.dim() > 1 ? s0.size(0) : 1;
    TORCH_CHECK(s0.numel() == groups * W && (groups == 1 || s0.size(0) == x0.size(0)), op, ": scale ", s0.sizes(), " must be (W) or (B, 1, ..., W) for x ", x0.sizes());
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["empty"] = x0.numel() == 0;
    ctx->saved_data["scaleType"] = int64_t(s0.scalar_type());
    if (x0.numel() == 0) {  // no row (B = 0) or empty rows (W = 0): nothing to normalise, nothing to divide by
      ctx->save_for_backward({x0, s0, at::empty({0}, x0.options().dtype(acc))});
      return at::empty_like(x0);
    }
    const int64_t rows = x0.numel() / W;
    const Tensor x = x0.contiguous(), s = s0.to(acc).contiguous();
    Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options().dtype(acc));
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const RmsNormArgs<T> a{ptr<T>(x), nullptr, ptr<Acc<T>>(s), nullptr, ptr<T>(y), ptr<Acc<T>>(rstd), nullptr, W, groups ? rows / groups : 0, eps};
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { rmsNormRows(a, begin, end); });
    });
    ctx->save_for_backward({x, s, rstd});
    return y.view(x0.sizes());
  }

  // dx_j = r s_j g_j − (r³ / W) x_j Σ_i g_i s_i x_i;   ds_j = Σ_rows g_j x_j r (per scale row)
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::rms_norm");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &s = saved[1], &rstd = saved[2];
    const auto scaleType = static_cast<at::ScalarType>(ctx->saved_data["scaleType"].toInt());
    const bool wantX = ctx->needs_input_grad(0), wantS = ctx->needs_input_grad(1);
    if (ctx->saved_data["empty"].toBool())  // no rows: the scale's gradient is an empty sum
      return {wantX ? at::zeros_like(x) : Tensor(), wantS ? at::zeros_like(s, s.options().dtype(scaleType)) : Tensor(), Tensor()};
    const Tensor g = grads[0].contiguous();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const int64_t W = x.size(-1), rows = rstd.numel(), perGroup = rows / groups;
    Tensor gx = wantX ? at::empty_like(x) : Tensor(), gs = wantS ? at::empty_like(s) : Tensor();  // gs in Acc<T>
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const RmsNormArgs<T> a{ptr<T>(x), ptr<T>(g), ptr<Acc<T>>(s), ptr<Acc<T>>(rstd), ptr<T>(gx), nullptr, ptr<Acc<T>>(gs), W, perGroup, 0.0};
      if (wantX) at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { rmsNormGradRows(a, begin, end); });
      if (wantS)
        at::parallel_for(0, groups * ((W + 63) / 64), 1, [&](int64_t begin, int64_t end) { rmsNormGradScale(a, begin, end); });
    });
    return {wantX ? gx.view(grads[0].sizes()) : Tensor(), wantS ? gs.to(scaleType) : Tensor(), Tensor()};
  }
};

}  // namespace

Tensor rmsNorm(const Tensor& x, const Tensor& scale, double eps) {
  return RmsNormFn::apply(x, scale, eps);
}

}  // namespace reptok
