// The exact (erf) GELU (`reptok::gelu`): one pass forward and one backward over contiguous elements, with the
// branch-free erf of fused-common.h, where ATen 1.13 runs a scalar-rate erf per element (its bf16 GELU also converts
// each element on its own). The MLPs of DINOv2 and of the generator's channel mixing run one per block. Registered
// in library.cc.
#include "fused-common.h"

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// GELU: y = x Φ(x); backward gx = gy · (Φ(x) + x φ(x)). Elements [begin, end) of contiguous tensors.
// ---------------------------------------------------------------------------------------------------------------

template <typename T>
struct GeluArgs {
  const T *x, *gy;  // gy: the output gradient (backward only)
  T* out;           // y, or the gradient of x
};

template <typename T>
REPTOK_INLINE void geluRangeBody(const GeluArgs<T>& a, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t i = begin; i < end; i++) {
    const Acc<T> x = toAcc(a.x[i]);
    a.out[i] = fromAcc<T>(x * normalCdf(x));
  }
}
REPTOK_SIMD_KERNEL(geluRange, GeluArgs)

template <typename T>
REPTOK_INLINE void geluGradRangeBody(const GeluArgs<T>& a, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t i = begin; i < end; i++) a.out[i] = fromAcc<T>(toAcc(a.gy[i]) * geluGrad(toAcc(a.x[i])));
}
REPTOK_SIMD_KERNEL(geluGradRange, GeluArgs)

constexpr int64_t kGrain = 1 << 14;  // elements per task: below this a parallel region costs more than it saves

struct GeluFn : public torch::autograd::Function<GeluFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x0) {
    checkCpuFloat(x0, "reptok::gelu", "x");
    const Tensor x = x0.contiguous();
    Tensor y = at::empty_like(x);
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const GeluArgs<T> a{ptr<T>(x), nullptr, ptr<T>(y)};
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) { geluRange(a, begin, end); });
    });
    ctx->save_for_backward({x});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::gelu");
    const Tensor x = ctx->get_saved_variables()[0];
    const Tensor gy = grads[0].contiguous();
    TORCH_CHECK(gy.scalar_type() == x.scalar_type(), "reptok::gelu: the output gradient is ", gy.scalar_type(), ", x is ", x.scalar_type());
    Tensor gx = at::empty_like(x);
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      const GeluArgs<T> a{ptr<T>(x), ptr<T>(gy), ptr<T>(gx)};
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) { geluGradRange(a, begin, end); });
    });
    return {gx};
  }
};

}  // namespace

Tensor gelu(const Tensor& x) {
  return GeluFn::apply(x);
}

}  // namespace reptok
