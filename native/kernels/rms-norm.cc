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
  const T *x, *s, *g, *rstd;  // g: the output gradient (backward only)
  T *out, *rstdOut;           // y or gx; rstdOut: forward only
  int64_t W, perGroup;        // rows per scale row
  double eps;
};

template <typename T>
REPTOK_INLINE const T* scaleRow(const RmsNormArgs<T>& a, int64_t i) { return a.s + (i / a.perGroup) * a.W; }

template <typename T>
REPTOK_INLINE void rmsNormRowsBody(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const T *xr = a.x + i * a.W, *sr = scaleRow(a, i);
    const T r = T(1) / std::sqrt(dot(xr, xr, a.W) / T(a.W) + T(a.eps));
    a.rstdOut[i] = r;
    T* yr = a.out + i * a.W;
    for (int64_t j = 0; j < a.W; j++) yr[j] = xr[j] * (sr[j] * r);
  }
}
REPTOK_SIMD_KERNEL(rmsNormRows, RmsNormArgs)

template <typename T>
REPTOK_INLINE void rmsNormGradRowsBody(const RmsNormArgs<T>& a, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const T *xr = a.x + i * a.W, *gr = a.g + i * a.W, *sr = scaleRow(a, i);
    const T r = a.rstd[i];
    const T k = r * r * r * dot3(gr, sr, xr, a.W) / T(a.W);
    T* o = a.out + i * a.W;
    for (int64_t j = 0; j < a.W; j++) o[j] = r * sr[j] * gr[j] - k * xr[j];
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
      const T r = a.rstd[i];
      for (int64_t j = j0; j < j1; j++) acc[j - j0] += double(gr[j] * xr[j] * r);
    }
    for (int64_t j = j0; j < j1; j++) a.out[grp * a.W + j] = T(acc[j - j0]);
  }
}
REPTOK_SIMD_KERNEL(rmsNormGradScale, RmsNormArgs)

struct RmsNormFn : public torch::autograd::Function<RmsNormFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x0, const Tensor& s0, double eps) {
    const char* op = "reptok::rms_norm";
    checkCpuFloat(x0, op, "x");
    TORCH_CHECK(s0.scalar_type() == x0.scalar_type(), op, ": scale dtype ", s0.scalar_type(), " differs from x dtype ", x0.scalar_type());
    TORCH_CHECK(x0.dim() >= 1 && s0.dim() >= 1 && s0.size(-1) == x0.size(-1), op, ": scale ", s0.sizes(), " does not match the last dim of x ", x0.sizes());
    const int64_t W = x0.size(-1), rows = x0.numel() / std::max<int64_t>(W, 1), groups = s0.numel() / W;
    TORCH_CHECK(groups == 1 || (s0.dim() == x0.dim() && s0.size(0) == x0.size(0) && groups == x0.size(0)), op, ": scale ", s0.sizes(), " must be (W) or (B, 1, ..., W) for x ", x0.sizes());
    const Tensor x = x0.contiguous(), s = s0.contiguous();
    Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm", [&] {
      const RmsNormArgs<scalar_t> a{x.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), nullptr, nullptr,
                                    y.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(), W, groups ? rows / groups : 0, eps};
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { rmsNormRows(a, begin, end); });
    });
    ctx->save_for_backward({x, s, rstd});
    ctx->saved_data["groups"] = groups;
    return y.view(x0.sizes());
  }

  // dx_j = r s_j g_j − (r³ / W) x_j Σ_i g_i s_i x_i;   ds_j = Σ_rows g_j x_j r (per scale row)
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::rms_norm");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &s = saved[1], &rstd = saved[2];
    const Tensor g = grads[0].contiguous();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const int64_t W = x.size(-1), rows = rstd.numel(), perGroup = rows / groups;
    const bool wantX = ctx->needs_input_grad(0), wantS = ctx->needs_input_grad(1);
    Tensor gx = wantX ? at::empty_like(x) : Tensor(), gs = wantS ? at::empty_like(s) : Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_backward", [&] {
      RmsNormArgs<scalar_t> a{x.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(),
                              nullptr, nullptr, W, perGroup, 0.0};
      if (wantX) {
        a.out = gx.data_ptr<scalar_t>();
        at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { rmsNormGradRows(a, begin, end); });
      }
      if (wantS) {
        a.out = gs.data_ptr<scalar_t>();
        at::parallel_for(0, groups * ((W + 63) / 64), 1, [&](int64_t begin, int64_t end) { rmsNormGradScale(a, begin, end); });
      }
    });
    return {wantX ? gx.view(grads[0].sizes()) : Tensor(), gs, Tensor()};
  }
};

}  // namespace

Tensor rmsNorm(const Tensor& x, const Tensor& scale, double eps) {
  return RmsNormFn::apply(x, scale, eps);
}

}  // namespace reptok
