// Cosine-attention queries and keys with axial RoPE in one pass (`reptok::cosine_rope_qk`), where eager code runs
// about twenty kernels (norm, scale, narrow, cos/sin products, cat — for q and for k, on strided views of qkv).
// Registered in library.cc.
#include "fused-common.h"

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Cosine-attention queries and keys with axial RoPE, straight from the fused qkv projection.
// qkv (B, L, 3, H, e); scale (H); cos, sin (B, H, L, d) with 2d ≤ e. For q and for k:
//   u = x · sqrt(scale_h) · rsqrt(Σ x² + 1e-6)              (unit norm times sqrt of the per-head temperature)
//   out = [u₁ cos − u₂ sin, u₂ cos + u₁ sin, u₃]           (u₁ = u[:d], u₂ = u[d:2d], u₃ = u[2d:])
// Outputs q, k as (B, H, L, e) in qkv's dtype, contiguous, ready for the attention matmuls. scale, cos and sin are
// Acc<T>: float32 next to bfloat16 qkv, as autocast keeps the learned scale and the RoPE tables.
// ---------------------------------------------------------------------------------------------------------------

constexpr double kQkEps = 1e-6;

template <typename T>
struct CosineRopeArgs {
  const T* x;              // qkv
  const Acc<T> *s, *c, *n;  // scale, cos, sin
  const T* g[2];           // output gradients of q and k (backward only; null when unused)
  T* out[2];               // forward: q, k; backward: out[0] is the gradient of qkv (or null)
  double* dots;            // backward: (gu·x)·ρ per (row, q/k, head), or null when the scale needs no gradient
  int64_t L, H, e, d;
};

// Rows are b·L + l; each writes q and k for every head.
template <typename T>
REPTOK_INLINE void cosineRopeRowsBody(const CosineRopeArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  const int64_t L = a.L, H = a.H, e = a.e, d = a.d;
  std::vector<C> u(e);
  for (int64_t bl = begin; bl < end; bl++) {
    const int64_t b = bl / L, l = bl % L;
    for (int which = 0; which < 2; which++) {
      for (int64_t h = 0; h < H; h++) {
        const T* x = a.x + ((bl * 3 + which) * H + h) * e;
        const C c = std::sqrt(a.s[h]) * (C(1) / std::sqrt(dot(x, x, e) + C(kQkEps)));
        for (int64_t j = 0; j < e; j++) u[j] = toAcc(x[j]) * c;
        const int64_t row = (b * H + h) * L + l;
        const C *cr = a.c + row * d, *sr = a.n + row * d;
        T* o = a.out[which] + row * e;
        for (int64_t j = 0; j < d; j++) {
          o[j] = fromAcc<T>(u[j] * cr[j] - u[j + d] * sr[j]);
          o[j + d] = fromAcc<T>(u[j + d] * cr[j] + u[j] * sr[j]);
        }
        for (int64_t j = 2 * d; j < e; j++) o[j] = fromAcc<T>(u[j]);
      }
    }
  }
}
REPTOK_SIMD_KERNEL(cosineRopeRows, CosineRopeArgs)

// Un-rotate the output gradient to gu, then through the normalisation:
//   gx = c·gu − sqrt(s)·ρ³·(gu·x)·x,  ρ = rsqrt(Σx² + eps), c = sqrt(s)·ρ.
template <typename T>
REPTOK_INLINE void cosineRopeGradRowsBody(const CosineRopeArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  const int64_t L = a.L, H = a.H, e = a.e, d = a.d;
  std::vector<C> gu(e);
  for (int64_t bl = begin; bl < end; bl++) {
    const int64_t b = bl / L, l = bl % L;
    for (int which = 0; which < 3; which++) {
      T* gx = a.out[0] ? a.out[0] + (bl * 3 + which) * H * e : nullptr;
      if (which == 2 || !a.g[which]) {  // v gets its gradient through its own view of qkv; an unused q or k has none
        if (gx) std::fill(gx, gx + H * e, fromAcc<T>(0));
        continue;
      }
      for (int64_t h = 0; h < H; h++) {
        const int64_t row = (b * H + h) * L + l;
        const T* go = a.g[which] + row * e;
        const C *cr = a.c + row * d, *sr = a.n + row * d;
        for (int64_t j = 0; j < d; j++) {
          gu[j] = toAcc(go[j]) * cr[j] + toAcc(go[j + d]) * sr[j];
          gu[j + d] = toAcc(go[j + d]) * cr[j] - toAcc(go[j]) * sr[j];
        }
        for (int64_t j = 2 * d; j < e; j++) gu[j] = toAcc(go[j]);
        const T* x = a.x + ((bl * 3 + which) * H + h) * e;
        const C gux = dot(gu.data(), x, e);
        const C rho = C(1) / std::sqrt(dot(x, x, e) + C(kQkEps)), sq = std::sqrt(a.s[h]);
        if (gx) {
          const C c = sq * rho, k = sq * rho * rho * rho * gux;
          T* o = gx + h * e;
          for (int64_t j = 0; j < e; j++) o[j] = fromAcc<T>(c * gu[j] - k * toAcc(x[j]));
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
    // the learned scale and the RoPE tables are float32 next to bfloat16 activations under autocast
    const at::ScalarType acc = accType(qkv0.scalar_type());
    for (const Tensor* t : {&scale0, &cos0, &sin0})
      TORCH_CHECK(t->scalar_type() == acc && t->device().is_cpu(), op, ": scale, cos and sin must be CPU ", acc, " tensors for ", qkv0.scalar_type(), " qkv, got ",
                  t->scalar_type(), " on ", t->device());
    const Tensor qkv = qkv0.contiguous(), scale = scale0.contiguous(), cs = cos0.contiguous(), sn = sin0.contiguous();
    const int64_t d = cs.size(3);
    Tensor q = at::empty({B, H, L, e}, qkv.options()), k = at::empty({B, H, L, e}, qkv.options());
    dispatchFloating(qkv.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const CosineRopeArgs<T> a{ptr<T>(qkv), ptr<Acc<T>>(scale), ptr<Acc<T>>(cs), ptr<Acc<T>>(sn), {nullptr, nullptr}, {ptr<T>(q), ptr<T>(k)}, nullptr, L, H, e, d};
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
    dispatchFloating(qkv.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const CosineRopeArgs<T> a{ptr<T>(qkv), ptr<Acc<T>>(scale), ptr<Acc<T>>(cs), ptr<Acc<T>>(sn), {ptr<T>(g[0]), ptr<T>(g[1])}, {ptr<T>(gqkv), nullptr},
                                wantS ? dots.data() : nullptr, L, H, e, d};
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

}  // namespace

std::tuple<Tensor, Tensor> cosineRopeQk(const Tensor& qkv, const Tensor& scale, const Tensor& cos, const Tensor& sin) {
  auto out = CosineRopeFn::apply(qkv, scale, cos, sin);
  return {out[0], out[1]};
}

}  // namespace reptok
