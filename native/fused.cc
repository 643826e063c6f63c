// Fused kernels for chains that eager code runs as many small kernels. Eager code runs RMSNorm with a scale as six
// ATen kernels (square, mean, add, rsqrt, mul, mul) and the cosine-attention q/k path with axial RoPE as about
// twenty (norm, scale, narrow, cos/sin products, cat — for q and for k, on strided views of qkv); each pass re-reads
// activations from memory. Here each chain is one pass forward and one backward. SwiGLU's gate (silu of one half
// times the other) is two kernels plus a strided read of each half; attention is two batched matmuls and a softmax.
//
// They are registered as operators (`reptok::rms_norm`, `reptok::swiglu`, `reptok::cosine_rope_qk`,
// `reptok::attention`), so JavaScript calls them through the dispatcher like any ATen op, the profiler lists them,
// and autograd records them (a custom Function). CPU, float32/float64; src/engine/fused.ts picks the composite
// ATen path for other devices and dtypes. The backward is not differentiable: create_graph through a fused op is
// refused with an error.
#include "common.h"

#include <torch/library.h>
#include <torch/csrc/autograd/custom_function.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The element loops are compiled three times — AVX-512, AVX2+FMA and baseline x86-64 — and the loader picks the
// widest the CPU has (GCC function multiversioning, `target_clones`). The addon is otherwise built for baseline
// x86-64 so the same build runs on any x86 machine; without this the loops would run 4 lanes wide (SSE2) and the
// gate's exp alone would cost twice the eager path. Each kernel body is an always-inline template, so its clone
// compiles the whole body for its ISA. Unlike the rest of the addon (-ffp-contract=off, for the optimizers'
// bit-exact match with PyTorch), these kernels let multiply-adds fuse: half the instructions in the attention
// products, and results that differ from the composite path only in rounding either way.
#pragma GCC optimize("fp-contract=fast")
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define REPTOK_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define REPTOK_SIMD_CLONES
#endif
#define REPTOK_INLINE inline __attribute__((always_inline))

// `name(const Args<float>&, begin, end)` and its double overload: the multiversioned entry points of `name##Body`,
// which processes rows [begin, end) (one at::parallel_for chunk).
#define REPTOK_SIMD_KERNEL(name, Args)                                                                           \
  REPTOK_SIMD_CLONES void name(const Args<float>& a, int64_t begin, int64_t end) { name##Body(a, begin, end); } \
  REPTOK_SIMD_CLONES void name(const Args<double>& a, int64_t begin, int64_t end) { name##Body(a, begin, end); }

namespace reptok {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void checkCpuFloat(const Tensor& t, const char* op, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", what, " must be on the CPU, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", what, " must be float32 or float64, got ", t.scalar_type());
}

// Sums with eight independent accumulators: a single running sum is one long dependency chain (an add's latency
// per element); eight chains pipeline and vectorise. The order differs from ATen's reductions only in rounding.
template <typename T>
REPTOK_INLINE T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
  T s = 0;
  for (; j < n; j++) s += a[j] * b[j];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
REPTOK_INLINE T dot3(const T* a, const T* b, const T* c, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k] * c[j + k];
  T s = 0;
  for (; j < n; j++) s += a[j] * b[j] * c[j];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

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

Tensor rmsNorm(const Tensor& x, const Tensor& scale, double eps) {
  return RmsNormFn::apply(x, scale, eps);
}

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU gate: y = a · silu(g) for h = [a, g] split in halves along the last dim: h (..., 2F) -> y (..., F)
// ---------------------------------------------------------------------------------------------------------------

// exp for float32, branch-free so the loops around it vectorise (std::exp is a scalar libm call): Cephes' expf
// reduction x = n·ln2 + r and degree-6 polynomial, within 2 ulp of libm over the float range.
REPTOK_INLINE float expApprox(float x) {
  x = std::min(88.3762626647949f, std::max(-87.3365478515625f, x));
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest via the float format
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}
REPTOK_INLINE double expApprox(double x) { return std::exp(x); }

template <typename T>
REPTOK_INLINE T sigmoid(T x) { return T(1) / (T(1) + expApprox(-x)); }

template <typename T>
struct SwiGluArgs {
  const T *h, *gy;  // gy: the output gradient (backward only)
  T* out;           // y, or the gradient of h
  int64_t F;
};

template <typename T>
REPTOK_INLINE void swigluRowsBody(const SwiGluArgs<T>& s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const T *a = s.h + i * 2 * s.F, *g = a + s.F;
    T* o = s.out + i * s.F;
    for (int64_t j = 0; j < s.F; j++) o[j] = a[j] * (g[j] * sigmoid(g[j]));
  }
}
REPTOK_SIMD_KERNEL(swigluRows, SwiGluArgs)

// da = gy · silu(g);  dg = gy · a · σ(g) · (1 + g (1 − σ(g)))
template <typename T>
REPTOK_INLINE void swigluGradRowsBody(const SwiGluArgs<T>& s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const T *a = s.h + i * 2 * s.F, *g = a + s.F, *go = s.gy + i * s.F;
    T *da = s.out + i * 2 * s.F, *dg = da + s.F;
    for (int64_t j = 0; j < s.F; j++) {
      const T sg = sigmoid(g[j]);
      da[j] = go[j] * (g[j] * sg);
      dg[j] = go[j] * a[j] * (sg * (T(1) + g[j] * (T(1) - sg)));
    }
  }
}
REPTOK_SIMD_KERNEL(swigluGradRows, SwiGluArgs)

struct SwiGluFn : public torch::autograd::Function<SwiGluFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& h0) {
    const char* op = "reptok::swiglu";
    checkCpuFloat(h0, op, "h");
    TORCH_CHECK(h0.dim() >= 1 && h0.size(-1) % 2 == 0, op, ": the last dim of h must be even (value and gate halves), got ", h0.sizes());
    const Tensor h = h0.contiguous();
    const int64_t F = h.size(-1) / 2, rows = F ? h.numel() / (2 * F) : 0;
    auto sizes = h.sizes().vec();
    sizes.back() = F;
    Tensor y = at::empty(sizes, h.options());
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "swiglu", [&] {
      const SwiGluArgs<scalar_t> s{h.data_ptr<scalar_t>(), nullptr, y.data_ptr<scalar_t>(), F};
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { swigluRows(s, begin, end); });
    });
    ctx->save_for_backward({h});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::swiglu");
    const Tensor h = ctx->get_saved_variables()[0];
    const Tensor gy = grads[0].contiguous();
    const int64_t F = h.size(-1) / 2, rows = F ? h.numel() / (2 * F) : 0;
    Tensor gh = at::empty_like(h);
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "swiglu_backward", [&] {
      const SwiGluArgs<scalar_t> s{h.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(), gh.data_ptr<scalar_t>(), F};
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { swigluGradRows(s, begin, end); });
    });
    return {gh};
  }
};

Tensor swiglu(const Tensor& h) {
  return SwiGluFn::apply(h);
}

// ---------------------------------------------------------------------------------------------------------------
// Cosine-attention queries and keys with axial RoPE, straight from the fused qkv projection.
// qkv (B, L, 3, H, e); scale (H); cos, sin (B, H, L, d) with 2d ≤ e. For q and for k:
//   u = x · sqrt(scale_h) · rsqrt(Σ x² + 1e-6)              (unit norm times sqrt of the per-head temperature)
//   out = [u₁ cos − u₂ sin, u₂ cos + u₁ sin, u₃]           (u₁ = u[:d], u₂ = u[d:2d], u₃ = u[2d:])
// Outputs q, k as (B, H, L, e), contiguous, ready for the attention matmuls.
// ---------------------------------------------------------------------------------------------------------------

constexpr double kQkEps = 1e-6;

template <typename T>
struct CosineRopeArgs {
  const T *x, *s, *c, *n;  // qkv, scale, cos, sin
  const T* g[2];           // output gradients of q and k (backward only; null when unused)
  T* out[2];               // forward: q, k; backward: out[0] is the gradient of qkv (or null)
  double* dots;            // backward: (gu·x)·ρ per (row, q/k, head), or null when the scale needs no gradient
  int64_t L, H, e, d;
};

// Rows are b·L + l; each writes q and k for every head.
template <typename T>
REPTOK_INLINE void cosineRopeRowsBody(const CosineRopeArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t L = a.L, H = a.H, e = a.e, d = a.d;
  std::vector<T> u(e);
  for (int64_t bl = begin; bl < end; bl++) {
    const int64_t b = bl / L, l = bl % L;
    for (int which = 0; which < 2; which++) {
      for (int64_t h = 0; h < H; h++) {
        const T* x = a.x + ((bl * 3 + which) * H + h) * e;
        const T c = std::sqrt(a.s[h]) * (T(1) / std::sqrt(dot(x, x, e) + T(kQkEps)));
        for (int64_t j = 0; j < e; j++) u[j] = x[j] * c;
        const int64_t row = (b * H + h) * L + l;
        const T *cr = a.c + row * d, *sr = a.n + row * d;
        T* o = a.out[which] + row * e;
        for (int64_t j = 0; j < d; j++) {
          o[j] = u[j] * cr[j] - u[j + d] * sr[j];
          o[j + d] = u[j + d] * cr[j] + u[j] * sr[j];
        }
        for (int64_t j = 2 * d; j < e; j++) o[j] = u[j];
      }
    }
  }
}
REPTOK_SIMD_KERNEL(cosineRopeRows, CosineRopeArgs)

// Un-rotate the output gradient to gu, then through the normalisation:
//   gx = c·gu − sqrt(s)·ρ³·(gu·x)·x,  ρ = rsqrt(Σx² + eps), c = sqrt(s)·ρ.
template <typename T>
REPTOK_INLINE void cosineRopeGradRowsBody(const CosineRopeArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t L = a.L, H = a.H, e = a.e, d = a.d;
  std::vector<T> gu(e);
  for (int64_t bl = begin; bl < end; bl++) {
    const int64_t b = bl / L, l = bl % L;
    for (int which = 0; which < 3; which++) {
      T* gx = a.out[0] ? a.out[0] + (bl * 3 + which) * H * e : nullptr;
      if (which == 2 || !a.g[which]) {  // v gets its gradient through its own view of qkv; an unused q or k has none
        if (gx) std::fill(gx, gx + H * e, T(0));
        continue;
      }
      for (int64_t h = 0; h < H; h++) {
        const int64_t row = (b * H + h) * L + l;
        const T *go = a.g[which] + row * e, *cr = a.c + row * d, *sr = a.n + row * d;
        for (int64_t j = 0; j < d; j++) {
          gu[j] = go[j] * cr[j] + go[j + d] * sr[j];
          gu[j + d] = go[j + d] * cr[j] - go[j] * sr[j];
        }
        for (int64_t j = 2 * d; j < e; j++) gu[j] = go[j];
        const T* x = a.x + ((bl * 3 + which) * H + h) * e;
        const T gux = dot(gu.data(), x, e);
        const T rho = T(1) / std::sqrt(dot(x, x, e) + T(kQkEps)), sq = std::sqrt(a.s[h]);
        if (gx) {
          const T c = sq * rho, k = sq * rho * rho * rho * gux;
          T* o = gx + h * e;
          for (int64_t j = 0; j < e; j++) o[j] = c * gu[j] - k * x[j];
        }
        if (a.dots) a.dots[(bl * 2 + which) * H + h] = double(gux * rho);
      }
    }
  }
}
REPTOK_SIMD_KERNEL(cosineRopeGradRows, CosineRopeArgs)

struct CosineRopeFn : public torch::autograd::Function<CosineRopeFn> {
  static variable_list forward(AutogradContext* ctx, const Tensor& qkv0, const Tensor& scale0, const Tensor& cos0, const Tensor& sin0) {
    const char* op = "reptok::cosine_rope_qk";
    checkCpuFloat(qkv0, op, "qkv");
    TORCH_CHECK(qkv0.dim() == 5 && qkv0.size(2) == 3, op, ": qkv must be (B, L, 3, H, e), got ", qkv0.sizes());
    const int64_t B = qkv0.size(0), L = qkv0.size(1), H = qkv0.size(3), e = qkv0.size(4);
    TORCH_CHECK(scale0.dim() == 1 && scale0.size(0) == H, op, ": scale must be (", H, "), got ", scale0.sizes());
    TORCH_CHECK(cos0.dim() == 4 && cos0.sizes() == sin0.sizes() && cos0.size(0) == B && cos0.size(1) == H && cos0.size(2) == L && 2 * cos0.size(3) <= e, op,
                ": cos and sin must be (B, H, L, d) with 2d ≤ ", e, ", got ", cos0.sizes(), " and ", sin0.sizes());
    for (const Tensor* t : {&scale0, &cos0, &sin0}) TORCH_CHECK(t->scalar_type() == qkv0.scalar_type(), op, ": all inputs must be ", qkv0.scalar_type(), ", got ", t->scalar_type());
    const Tensor qkv = qkv0.contiguous(), scale = scale0.contiguous(), cs = cos0.contiguous(), sn = sin0.contiguous();
    const int64_t d = cs.size(3);
    Tensor q = at::empty({B, H, L, e}, qkv.options()), k = at::empty({B, H, L, e}, qkv.options());
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "cosine_rope_qk", [&] {
      const CosineRopeArgs<scalar_t> a{qkv.data_ptr<scalar_t>(), scale.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), sn.data_ptr<scalar_t>(),
                                       {nullptr, nullptr}, {q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>()}, nullptr, L, H, e, d};
      at::parallel_for(0, B * L, 8, [&](int64_t begin, int64_t end) { cosineRopeRows(a, begin, end); });
    });
    ctx->save_for_backward({qkv, scale, cs, sn});
    return {q, k};
  }

  // gx as in cosineRopeGradRows; gs_h = Σ (gu·x)·ρ / (2 sqrt(s_h)).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::cosine_rope_qk");
    TORCH_CHECK(!ctx->needs_input_grad(2) && !ctx->needs_input_grad(3), "reptok::cosine_rope_qk: cos and sin take no gradient (RoPE frequencies are fixed buffers)");
    const auto saved = ctx->get_saved_variables();
    const Tensor &qkv = saved[0], &scale = saved[1], &cs = saved[2], &sn = saved[3];
    const int64_t B = qkv.size(0), L = qkv.size(1), H = qkv.size(3), e = qkv.size(4), d = cs.size(3);
    const Tensor g[2] = {grads[0].defined() ? grads[0].contiguous() : Tensor(), grads[1].defined() ? grads[1].contiguous() : Tensor()};
    const bool wantX = ctx->needs_input_grad(0), wantS = ctx->needs_input_grad(1);
    Tensor gqkv = wantX ? at::empty_like(qkv) : Tensor();
    std::vector<double> dots(wantS ? B * L * 2 * H : 0, 0.0);  // per (row, q/k, head): (gu·x)·ρ
    AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "cosine_rope_qk_backward", [&] {
      const CosineRopeArgs<scalar_t> a{qkv.data_ptr<scalar_t>(), scale.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), sn.data_ptr<scalar_t>(),
                                       {g[0].defined() ? g[0].data_ptr<scalar_t>() : nullptr, g[1].defined() ? g[1].data_ptr<scalar_t>() : nullptr},
                                       {wantX ? gqkv.data_ptr<scalar_t>() : nullptr, nullptr}, wantS ? dots.data() : nullptr, L, H, e, d};
      at::parallel_for(0, B * L, 8, [&](int64_t begin, int64_t end) { cosineRopeGradRows(a, begin, end); });
    });
    Tensor gs;
    if (wantS) {
      std::vector<double> acc(H, 0.0);
      for (int64_t i = 0; i < B * L * 2; i++)
        for (int64_t h = 0; h < H; h++) acc[h] += dots[i * H + h];
      gs = at::empty({H}, scale.options().dtype(at::kDouble));
      double* p = gs.data_ptr<double>();
      const Tensor sd = scale.to(at::kDouble);
      for (int64_t h = 0; h < H; h++) p[h] = acc[h] / (2 * std::sqrt(sd.data_ptr<double>()[h]));
      gs = gs.to(scale.scalar_type());
    }
    return {gqkv, gs, Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor> cosineRopeQk(const Tensor& qkv, const Tensor& scale, const Tensor& cos, const Tensor& sin) {
  auto out = CosineRopeFn::apply(qkv, scale, cos, sin);
  return {out[0], out[1]};
}

// ---------------------------------------------------------------------------------------------------------------
// Attention without a mask: out = softmax(scale · q kᵀ) v for every (batch, head).
// q (B, H, Lq, e), k and v (B, H, Lk, e), any strides with unit stride along e (views of a qkv projection read in
// place) -> out (B, Lq, H, e), the layout the output projection reads, so no transpose copy follows.
// Eager code runs this as two batched matmuls — libtorch 1.13 makes one BLAS call per (batch, head) on 65×65
// matrices, where thread start-up outweighs the arithmetic — plus a softmax pass. Here one task per (batch, head)
// copies its panels into zero-padded scratch (widths rounded up to the vector length) and runs every product
// through one register-blocked kernel, the scores never leaving L1.
// ---------------------------------------------------------------------------------------------------------------

// 64-byte vectors (GCC vector extensions): one zmm register on AVX-512, two ymm on AVX2, four xmm on baseline.
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(64)));
  static constexpr int64_t N = 64 / sizeof(T);
};
template <typename T>
REPTOK_INLINE typename Simd<T>::V loadV(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// out (M, W) = A (M, K) · P (K, W) with A read as a[m·am + k·ak] (so Aᵀ is the same call with the strides
// swapped), P rows ldp apart, W a multiple of the vector length. R rows of out at a time, one vector of columns.
template <typename T, int R>
REPTOK_INLINE void gemmRows(const T* a, int64_t am, int64_t ak, int64_t K, const T* p, int64_t ldp, int64_t W, T* out, int64_t ldo) {
  using V = typename Simd<T>::V;
  for (int64_t w = 0; w < W; w += Simd<T>::N) {
    V acc[R] = {};
    for (int64_t kk = 0; kk < K; kk++) {
      const V pv = loadV(p + kk * ldp + w);
      for (int r = 0; r < R; r++) acc[r] += a[r * am + kk * ak] * pv;
    }
    for (int r = 0; r < R; r++) std::memcpy(out + r * ldo + w, &acc[r], sizeof(V));
  }
}
template <typename T>
REPTOK_INLINE void gemm(const T* a, int64_t am, int64_t ak, int64_t M, int64_t K, const T* p, int64_t ldp, int64_t W, T* out, int64_t ldo) {
  int64_t m = 0;
  for (; m + 8 <= M; m += 8) gemmRows<T, 8>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
  for (; m + 4 <= M; m += 4) gemmRows<T, 4>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
  for (; m < M; m++) gemmRows<T, 1>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
}

// Copies L strided rows of length e into (L, ep) zero-padded rows, or transposed into (e, Lp) zero-padded rows.
template <typename T>
REPTOK_INLINE void padRows(const T* x, int64_t stride, int64_t L, int64_t e, int64_t ep, T* dst) {
  for (int64_t j = 0; j < L; j++) {
    std::copy(x + j * stride, x + j * stride + e, dst + j * ep);
    std::fill(dst + j * ep + e, dst + (j + 1) * ep, T(0));
  }
}
template <typename T>
REPTOK_INLINE void padTransposed(const T* x, int64_t stride, int64_t L, int64_t e, int64_t Lp, T* dst) {
  std::fill(dst, dst + e * Lp, T(0));
  for (int64_t j = 0; j < L; j++)
    for (int64_t d = 0; d < e; d++) dst[d * Lp + j] = x[j * stride + d];
}

// Softmax of scale · s[0, n) in place; the padding s[n, np) is set to 0.
template <typename T>
REPTOK_INLINE void softmaxRow(T* s, int64_t n, int64_t np, T scale) {
  for (int64_t j = 0; j < n; j++) s[j] *= scale;
  T m[8];
  std::fill(m, m + 8, -std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) m[k] = s[j + k] > m[k] ? s[j + k] : m[k];
  T mx = std::max(std::max(std::max(m[0], m[1]), std::max(m[2], m[3])), std::max(std::max(m[4], m[5]), std::max(m[6], m[7])));
  for (; j < n; j++) mx = std::max(mx, s[j]);
  for (j = 0; j < n; j++) s[j] = expApprox(s[j] - mx);
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (j = 0; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += s[j + k];
  T sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; j++) sum += s[j];
  const T inv = T(1) / sum;
  for (j = 0; j < n; j++) s[j] *= inv;
  std::fill(s + n, s + np, T(0));
}

template <typename T>
struct AttentionArgs {
  const T *q, *k, *v, *go;  // go: gradient of out (backward only)
  T* out;                   // forward: (B, Lq, H, e)
  T* p;                     // probabilities (B·H, Lq, Lkp): written by a forward that keeps them, read by backward
  T *gq, *gk, *gv;          // backward: gradients (B, H, L, e), each null when not needed
  int64_t H, Lq, Lk, e;
  int64_t qs[3], ks[3], vs[3], gos[3];  // strides of (b, h, l) for q, k, v, go
  T scale;
};

// Tasks are b·H + h.
template <typename T>
REPTOK_INLINE void attentionTasksBody(const AttentionArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<T>::N), ep = roundUp(e, Simd<T>::N);
  std::vector<T> kt(e * Lkp), vp(Lk * ep), scores(a.p ? 0 : Lq * Lkp), o(Lq * ep);
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const T* q = a.q + b * a.qs[0] + h * a.qs[1];
    T* s = a.p ? a.p + task * Lq * Lkp : scores.data();
    padTransposed(a.k + b * a.ks[0] + h * a.ks[1], a.ks[2], Lk, e, Lkp, kt.data());
    padRows(a.v + b * a.vs[0] + h * a.vs[1], a.vs[2], Lk, e, ep, vp.data());
    gemm(q, a.qs[2], int64_t(1), Lq, e, kt.data(), Lkp, Lkp, s, Lkp);  // q kᵀ (Lq, Lkp)
    for (int64_t i = 0; i < Lq; i++) softmaxRow(s + i * Lkp, Lk, Lkp, a.scale);
    gemm(s, Lkp, int64_t(1), Lq, Lk, vp.data(), ep, ep, o.data(), ep);  // P v (Lq, ep)
    for (int64_t i = 0; i < Lq; i++) std::copy(o.data() + i * ep, o.data() + i * ep + e, a.out + ((b * Lq + i) * H + h) * e);
  }
}
REPTOK_SIMD_KERNEL(attentionTasks, AttentionArgs)

// With P the probabilities and dO the output gradient, per (batch, head):
//   dV = Pᵀ dO;  dP = dO Vᵀ;  dS = scale · P ⊙ (dP − rowsum(P ⊙ dP));  dQ = dS K;  dK = dSᵀ Q
template <typename T>
REPTOK_INLINE void attentionGradTasksBody(const AttentionArgs<T>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<T>::N), ep = roundUp(e, Simd<T>::N);
  std::vector<T> gop(Lq * ep), vt(e * Lkp), ds(Lq * Lkp), rows(std::max(Lq, Lk) * ep), g(std::max(Lq, Lk) * ep);
  const auto unpad = [&](const T* src, int64_t L, T* dst) {
    for (int64_t j = 0; j < L; j++) std::copy(src + j * ep, src + j * ep + e, dst + j * e);
  };
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const T* P = a.p + task * Lq * Lkp;
    padRows(a.go + b * a.gos[0] + h * a.gos[1], a.gos[2], Lq, e, ep, gop.data());
    if (a.gv) {
      gemm(P, int64_t(1), Lkp, Lk, Lq, gop.data(), ep, ep, g.data(), ep);  // Pᵀ dO (Lk, ep)
      unpad(g.data(), Lk, a.gv + task * Lk * e);
    }
    if (!a.gq && !a.gk) continue;
    padTransposed(a.v + b * a.vs[0] + h * a.vs[1], a.vs[2], Lk, e, Lkp, vt.data());
    gemm(gop.data(), ep, int64_t(1), Lq, e, vt.data(), Lkp, Lkp, ds.data(), Lkp);  // dP = dO vᵀ (Lq, Lkp)
    for (int64_t i = 0; i < Lq; i++) {
      const T *pi = P + i * Lkp;
      T* di = ds.data() + i * Lkp;
      const T r = dot(pi, di, Lk);
      for (int64_t j = 0; j < Lkp; j++) di[j] = a.scale * (pi[j] * (di[j] - r));  // padding: P = 0 -> dS = 0
    }
    if (a.gq) {
      padRows(a.k + b * a.ks[0] + h * a.ks[1], a.ks[2], Lk, e, ep, rows.data());
      gemm(ds.data(), Lkp, int64_t(1), Lq, Lk, rows.data(), ep, ep, g.data(), ep);  // dS k (Lq, ep)
      unpad(g.data(), Lq, a.gq + task * Lq * e);
    }
    if (a.gk) {
      padRows(a.q + b * a.qs[0] + h * a.qs[1], a.qs[2], Lq, e, ep, rows.data());
      gemm(ds.data(), int64_t(1), Lkp, Lk, Lq, rows.data(), ep, ep, g.data(), ep);  // dSᵀ q (Lk, ep)
      unpad(g.data(), Lk, a.gk + task * Lk * e);
    }
  }
}
REPTOK_SIMD_KERNEL(attentionGradTasks, AttentionArgs)

// Inputs with a non-unit stride along e are copied; (b, h, l) strides are read as they are.
Tensor unitInnerStride(const Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

void setStrides(int64_t (&dst)[3], const Tensor& t) {
  for (int i = 0; i < 3; i++) dst[i] = t.stride(i);
}

// Runs the forward kernel; `p` (B, H, Lq, Lkp) receives the probabilities when defined.
Tensor attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const Tensor& p) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), e = q.size(3);
  Tensor out = at::empty({B, Lq, H, e}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "attention", [&] {
    AttentionArgs<scalar_t> a{q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), nullptr, out.data_ptr<scalar_t>(),
                              p.defined() ? p.data_ptr<scalar_t>() : nullptr, nullptr, nullptr, nullptr, H, Lq, Lk, e, {}, {}, {}, {}, scalar_t(scale)};
    setStrides(a.qs, q);
    setStrides(a.ks, k);
    setStrides(a.vs, v);
    at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) { attentionTasks(a, begin, end); });
  });
  return out;
}

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
    const int64_t Lkp = roundUp(k.size(2), 64 / int64_t(q.element_size()));  // the kernel's padded row length
    Tensor p = at::empty({q.size(0), q.size(1), q.size(2), Lkp}, q.options());
    Tensor out = attentionForward(q, k, v, scale, p);
    ctx->save_for_backward({q, k, v, p});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::attention");
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &p = saved[3];
    const Tensor go = unitInnerStride(grads[0].permute({0, 2, 1, 3}));  // (B, H, Lq, e) view of the (B, Lq, H, e) gradient
    const int64_t B = q.size(0), H = q.size(1);
    Tensor gq = ctx->needs_input_grad(0) ? at::empty({B, H, q.size(2), q.size(3)}, q.options()) : Tensor();
    Tensor gk = ctx->needs_input_grad(1) ? at::empty({B, H, k.size(2), k.size(3)}, k.options()) : Tensor();
    Tensor gv = ctx->needs_input_grad(2) ? at::empty({B, H, v.size(2), v.size(3)}, v.options()) : Tensor();
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "attention_backward", [&] {
      const auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      AttentionArgs<scalar_t> a{q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), go.data_ptr<scalar_t>(), nullptr,
                                p.data_ptr<scalar_t>(), ptr(gq), ptr(gk), ptr(gv), H, q.size(2), k.size(2), q.size(3), {}, {}, {}, {},
                                scalar_t(ctx->saved_data["scale"].toDouble())};
      setStrides(a.qs, q);
      setStrides(a.ks, k);
      setStrides(a.vs, v);
      setStrides(a.gos, go);
      at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) { attentionGradTasks(a, begin, end); });
    });
    return {gq, gk, gv, Tensor()};
  }
};

Tensor attention(const Tensor& q0, const Tensor& k0, const Tensor& v0, double scale) {
  const char* op = "reptok::attention";
  checkCpuFloat(q0, op, "q");
  TORCH_CHECK(q0.dim() == 4 && k0.dim() == 4 && v0.dim() == 4, op, ": q, k, v must be (B, H, L, e), got ", q0.sizes(), ", ", k0.sizes(), ", ", v0.sizes());
  TORCH_CHECK(k0.sizes() == v0.sizes() && k0.size(0) == q0.size(0) && k0.size(1) == q0.size(1) && k0.size(3) == q0.size(3), op,
              ": k and v must be (B, H, Lk, e) for q ", q0.sizes(), ", got ", k0.sizes(), " and ", v0.sizes());
  TORCH_CHECK(k0.size(2) > 0, op, ": there must be at least one key");
  for (const Tensor* t : {&k0, &v0}) TORCH_CHECK(t->scalar_type() == q0.scalar_type() && t->device() == q0.device(), op, ": q, k, v must share dtype and device");
  const Tensor q = unitInnerStride(q0), k = unitInnerStride(k0), v = unitInnerStride(v0);
  const bool graph = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return graph ? AttentionFn::apply(q, k, v, scale) : attentionForward(q, k, v, scale, Tensor());
}

}  // namespace

void refuseDoubleBackward(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), op, ": the fused kernel has no double backward; build the graph with the composite ops to differentiate twice");
}

TORCH_LIBRARY(reptok, m) {
  m.def("rms_norm(Tensor x, Tensor scale, float eps) -> Tensor", &rmsNorm);
  m.def("swiglu(Tensor h) -> Tensor", &swiglu);
  m.def("cosine_rope_qk(Tensor qkv, Tensor scale, Tensor cos, Tensor sin) -> (Tensor, Tensor)", &cosineRopeQk);
  m.def("attention(Tensor q, Tensor k, Tensor v, float scale) -> Tensor", &attention);
}

}  // namespace reptok
