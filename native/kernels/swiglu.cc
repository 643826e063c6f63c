// The fused SwiGLU gate (`reptok::swiglu`): silu of one half times the other in one pass, where eager code runs two
// kernels plus a strided read of each half. Registered in library.cc.
#include "fused-common.h"

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU gate: y = a · silu(g) for h = [a, g] split in halves along the last dim: h (..., 2F) -> y (..., F)
// ---------------------------------------------------------------------------------------------------------------

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
    for (int64_t j = 0; j < s.F; j++) {
      const Acc<T> gj = toAcc(g[j]);
      o[j] = fromAcc<T>(toAcc(a[j]) * (gj * sigmoid(gj)));
    }
  }
}
REPTOK_SIMD_KERNEL(swigluRows, SwiGluArgs)

// da = gy · silu(g);  dg = gy · a · σ(g) · (1 + g (1 − σ(g)))
template <typename T>
REPTOK_INLINE void swigluGradRowsBody(const SwiGluArgs<T>& s, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const T *a = s.h + i * 2 * s.F, *g = a + s.F, *go = s.gy + i * s.F;
    T *da = s.out + i * 2 * s.F, *dg = da + s.F;
#pragma omp simd  // GCC otherwise runs a scalar version of the bf16 loop for chunks of more than two rows
    for (int64_t j = 0; j < s.F; j++) {
      using C = Acc<T>;
      const C gj = toAcc(g[j]), gyj = toAcc(go[j]), sg = sigmoid(gj);
      da[j] = fromAcc<T>(gyj * (gj * sg));
      dg[j] = fromAcc<T>(gyj * toAcc(a[j]) * (sg * (C(1) + gj * (C(1) - sg))));
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
    dispatchFloating(h.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const SwiGluArgs<T> s{ptr<T>(h), nullptr, ptr<T>(y), F};
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
    dispatchFloating(h.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const SwiGluArgs<T> s{ptr<T>(h), ptr<T>(gy), ptr<T>(gh), F};
      at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) { swigluGradRows(s, begin, end); });
    });
    return {gh};
  }
};

}  // namespace

Tensor swiglu(const Tensor& h) {
  return SwiGluFn::apply(h);
}

}  // namespace reptok
