// Fused kernels for the decoder's elementwise chains. Eager code runs RMSNorm with a scale as six ATen kernels
// (square, mean, add, rsqrt, mul, mul) and the cosine-attention q/k path with axial RoPE as about twenty (norm,
// scale, narrow, cos/sin products, cat — for q and for k, on strided views of qkv); each pass re-reads activations
// from memory. Here each chain is one pass forward and one backward.
//
// SwiGLU's gate (silu of one half times the other) is two kernels plus a strided read of each half.
//
// They are registered as operators (`reptok::rms_norm`, `reptok::swiglu`, `reptok::cosine_rope_qk`), so JavaScript calls them through
// the dispatcher like any ATen op, the profiler lists them, and autograd records them (a custom Function). CPU,
// float32/float64; src/engine/functional.ts picks the composite ATen path for other devices and dtypes. The
// backward is not differentiable: create_graph through a fused op is refused with an error.
#include <torch/library.h>
#include <torch/csrc/autograd/custom_function.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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
inline T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
  T s = 0;
  for (; j < n; j++) s += a[j] * b[j];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
inline T dot3(const T* a, const T* b, const T* c, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k] * c[j + k];
  T s = 0;
  for (; j < n; j++) s += a[j] * b[j] * c[j];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void refuseDoubleBackward(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), op, ": the fused kernel has no double backward; build the graph with the composite ops to differentiate twice");
}

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm with a scale: y = x · (s · rsqrt(mean(x², -1) + eps))
// x (..., W); s (W) for every row, or (B, 1, …, 1, W) with x (B, …, W): one scale row per leading index.
// ---------------------------------------------------------------------------------------------------------------

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
    const int64_t perGroup = groups ? rows / groups : 0;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* sp = s.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* rp = rstd.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          const scalar_t* xr = xp + i * W;
          const scalar_t* sr = sp + (groups == 1 ? 0 : i / perGroup) * W;
          const scalar_t r = scalar_t(1) / std::sqrt(dot(xr, xr, W) / scalar_t(W) + scalar_t(eps));
          rp[i] = r;
          scalar_t* yr = yp + i * W;
          for (int64_t j = 0; j < W; j++) yr[j] = xr[j] * (sr[j] * r);
        }
      });
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
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* sp = s.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const scalar_t* rp = rstd.data_ptr<scalar_t>();
      if (wantX) {
        scalar_t* gxp = gx.data_ptr<scalar_t>();
        at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; i++) {
            const scalar_t *xr = xp + i * W, *gr = gp + i * W, *sr = sp + (groups == 1 ? 0 : i / perGroup) * W;
            const scalar_t r = rp[i];
            const scalar_t k = r * r * r * dot3(gr, sr, xr, W) / scalar_t(W);
            scalar_t* o = gxp + i * W;
            for (int64_t j = 0; j < W; j++) o[j] = r * sr[j] * gr[j] - k * xr[j];
          }
        });
      }
      if (wantS) {
        // one task per (scale row, block of 64 columns): no two tasks write the same element
        scalar_t* gsp = gs.data_ptr<scalar_t>();
        const int64_t blocks = (W + 63) / 64;
        at::parallel_for(0, groups * blocks, 1, [&](int64_t begin, int64_t end) {
          for (int64_t task = begin; task < end; task++) {
            const int64_t grp = task / blocks, j0 = (task % blocks) * 64, j1 = std::min(W, j0 + 64);
            double acc[64] = {0};
            for (int64_t i = grp * perGroup; i < (grp + 1) * perGroup; i++) {
              const scalar_t *xr = xp + i * W, *gr = gp + i * W;
              const scalar_t r = rp[i];
              for (int64_t j = j0; j < j1; j++) acc[j - j0] += double(gr[j] * xr[j] * r);
            }
            for (int64_t j = j0; j < j1; j++) gsp[grp * W + j] = scalar_t(acc[j - j0]);
          }
        });
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
inline float expApprox(float x) {
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
inline double expApprox(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + expApprox(-x)); }

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
      const scalar_t* hp = h.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          const scalar_t *a = hp + i * 2 * F, *g = a + F;
          scalar_t* o = yp + i * F;
          for (int64_t j = 0; j < F; j++) o[j] = a[j] * (g[j] * sigmoid(g[j]));
        }
      });
    });
    ctx->save_for_backward({h});
    return y;
  }

  // da = gy · silu(g);  dg = gy · a · σ(g) · (1 + g (1 − σ(g)))
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::swiglu");
    const Tensor h = ctx->get_saved_variables()[0];
    const Tensor gy = grads[0].contiguous();
    const int64_t F = h.size(-1) / 2, rows = F ? h.numel() / (2 * F) : 0;
    Tensor gh = at::empty_like(h);
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "swiglu_backward", [&] {
      const scalar_t* hp = h.data_ptr<scalar_t>();
      const scalar_t* gp = gy.data_ptr<scalar_t>();
      scalar_t* op = gh.data_ptr<scalar_t>();
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) {
          const scalar_t *a = hp + i * 2 * F, *g = a + F, *go = gp + i * F;
          scalar_t *da = op + i * 2 * F, *dg = da + F;
          for (int64_t j = 0; j < F; j++) {
            const scalar_t sg = sigmoid(g[j]);
            da[j] = go[j] * (g[j] * sg);
            dg[j] = go[j] * a[j] * (sg * (scalar_t(1) + g[j] * (scalar_t(1) - sg)));
          }
        }
      });
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
      const scalar_t* xp = qkv.data_ptr<scalar_t>();
      const scalar_t* sp = scale.data_ptr<scalar_t>();
      const scalar_t* cp = cs.data_ptr<scalar_t>();
      const scalar_t* np = sn.data_ptr<scalar_t>();
      scalar_t* out[2] = {q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>()};
      at::parallel_for(0, B * L, 8, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> u(e);
        for (int64_t bl = begin; bl < end; bl++) {
          const int64_t b = bl / L, l = bl % L;
          for (int which = 0; which < 2; which++) {
            for (int64_t h = 0; h < H; h++) {
              const scalar_t* x = xp + ((bl * 3 + which) * H + h) * e;
              const scalar_t c = std::sqrt(sp[h]) * (scalar_t(1) / std::sqrt(dot(x, x, e) + scalar_t(kQkEps)));
              for (int64_t j = 0; j < e; j++) u[j] = x[j] * c;
              const int64_t row = (b * H + h) * L + l;
              const scalar_t *cr = cp + row * d, *sr = np + row * d;
              scalar_t* o = out[which] + row * e;
              for (int64_t j = 0; j < d; j++) {
                o[j] = u[j] * cr[j] - u[j + d] * sr[j];
                o[j + d] = u[j + d] * cr[j] + u[j] * sr[j];
              }
              for (int64_t j = 2 * d; j < e; j++) o[j] = u[j];
            }
          }
        }
      });
    });
    ctx->save_for_backward({qkv, scale, cs, sn});
    return {q, k};
  }

  // Un-rotate the output gradient to gu, then through the normalisation:
  //   gx = c·gu − sqrt(s)·ρ³·(gu·x)·x,  gs_h = Σ (gu·x)·ρ / (2 sqrt(s_h)),  ρ = rsqrt(Σx² + eps), c = sqrt(s)·ρ.
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
      const scalar_t* xp = qkv.data_ptr<scalar_t>();
      const scalar_t* sp = scale.data_ptr<scalar_t>();
      const scalar_t* cp = cs.data_ptr<scalar_t>();
      const scalar_t* np = sn.data_ptr<scalar_t>();
      const scalar_t* gp[2] = {g[0].defined() ? g[0].data_ptr<scalar_t>() : nullptr, g[1].defined() ? g[1].data_ptr<scalar_t>() : nullptr};
      scalar_t* gxp = wantX ? gqkv.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, B * L, 8, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> gu(e);
        for (int64_t bl = begin; bl < end; bl++) {
          const int64_t b = bl / L, l = bl % L;
          for (int which = 0; which < 3; which++) {
            scalar_t* gx = gxp ? gxp + (bl * 3 + which) * H * e : nullptr;
            if (which == 2 || !gp[which]) {  // v gets its gradient through its own view of qkv; an unused q or k has none
              if (gx) std::fill(gx, gx + H * e, scalar_t(0));
              continue;
            }
            for (int64_t h = 0; h < H; h++) {
              const int64_t row = (b * H + h) * L + l;
              const scalar_t *go = gp[which] + row * e, *cr = cp + row * d, *sr = np + row * d;
              for (int64_t j = 0; j < d; j++) {
                gu[j] = go[j] * cr[j] + go[j + d] * sr[j];
                gu[j + d] = go[j + d] * cr[j] - go[j] * sr[j];
              }
              for (int64_t j = 2 * d; j < e; j++) gu[j] = go[j];
              const scalar_t* x = xp + ((bl * 3 + which) * H + h) * e;
              const scalar_t gux = dot(gu.data(), x, e);
              const scalar_t rho = scalar_t(1) / std::sqrt(dot(x, x, e) + scalar_t(kQkEps)), sq = std::sqrt(sp[h]);
              if (gx) {
                const scalar_t c = sq * rho, k = sq * rho * rho * rho * gux;
                scalar_t* o = gx + h * e;
                for (int64_t j = 0; j < e; j++) o[j] = c * gu[j] - k * x[j];
              }
              if (wantS) dots[(bl * 2 + which) * H + h] = double(gux * rho);
            }
          }
        }
      });
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

}  // namespace

TORCH_LIBRARY(reptok, m) {
  m.def("rms_norm(Tensor x, Tensor scale, float eps) -> Tensor", &rmsNorm);
  m.def("swiglu(Tensor h) -> Tensor", &swiglu);
  m.def("cosine_rope_qk(Tensor qkv, Tensor scale, Tensor cos, Tensor sin) -> (Tensor, Tensor)", &cosineRopeQk);
}

}  // namespace reptok
