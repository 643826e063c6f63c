// What the fused kernels in this folder share: the multiversioned (SIMD) build of their element loops, the element
// types (float32, float64, bfloat16 computed in float32), the input check, and the row helpers more than one kernel
// uses. Included only by the fused kernels' files: it switches on multiply-add contraction for the rest of the file
// that includes it.
#pragma once

#include "../common.h"

#include <torch/csrc/autograd/custom_function.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
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

// `name(const Args<float>&, begin, end)` and its double and bfloat16 overloads: the multiversioned entry points of
// `name##Body`, which processes rows [begin, end) (one at::parallel_for chunk).
#define REPTOK_SIMD_KERNEL(name, Args)                                                                           \
  REPTOK_SIMD_CLONES void name(const Args<float>& a, int64_t begin, int64_t end) { name##Body(a, begin, end); } \
  REPTOK_SIMD_CLONES void name(const Args<double>& a, int64_t begin, int64_t end) { name##Body(a, begin, end); } \
  REPTOK_SIMD_CLONES void name(const Args<Bf16>& a, int64_t begin, int64_t end) { name##Body(a, begin, end); }

namespace reptok {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ---------------------------------------------------------------------------------------------------------------
// Element types. The kernels store float32, float64 or bfloat16 and compute in Acc<T>: float64 for float64, float32
// otherwise — bfloat16 rows are widened on load, every product and sum runs in float32, and results are rounded
// once, on store. Parameters and saved statistics (scales, RoPE tables, rstd, probabilities) are Acc<T> tensors.
// ---------------------------------------------------------------------------------------------------------------

// bfloat16 as its bits (the layout of c10::BFloat16). Its own type, not c10::BFloat16, whose implicit float
// conversions would silently compile any arithmetic left on stored values, and whose rounding is written as a
// branch on NaN.
struct Bf16 {
  uint16_t bits;
};

template <typename T>
struct AccOf {
  using type = T;
};
template <>
struct AccOf<Bf16> {
  using type = float;
};
template <typename T>
using Acc = typename AccOf<T>::type;

// Widening: bfloat16 is the top half of a float32, so a 16-bit shift (vectorises to a zero-extend and a shift).
REPTOK_INLINE float toAcc(float x) { return x; }
REPTOK_INLINE double toAcc(double x) { return x; }
REPTOK_INLINE float toAcc(Bf16 x) {
  const uint32_t u = uint32_t(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Narrowing: round to nearest, ties to even, bit for bit as c10::BFloat16 does (add 0x7fff plus the lowest kept bit,
// truncate); NaN becomes the quiet NaN 0x7fc0 (the addition could carry it into infinity). A select, not a branch,
// so the stores vectorise.
template <typename T>
REPTOK_INLINE T fromAcc(Acc<T> x) { return x; }
template <>
REPTOK_INLINE Bf16 fromAcc<Bf16>(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return Bf16{uint16_t(x != x ? 0x7fc0u : rounded)};
}

template <typename T>
constexpr at::ScalarType scalarTypeOf() {
  return std::is_same<T, float>::value ? at::kFloat : std::is_same<T, double>::value ? at::kDouble : at::kBFloat16;
}

// The data of `t` as T (Bf16 for bfloat16), or null for an undefined tensor; a dtype that is not T is a bug here.
template <typename T>
T* ptr(const Tensor& t) {
  if (!t.defined()) return nullptr;
  TORCH_INTERNAL_ASSERT(t.scalar_type() == scalarTypeOf<T>(), "fused kernel: expected ", scalarTypeOf<T>(), ", got ", t.scalar_type());
  return static_cast<T*>(t.data_ptr());
}

// Runs `fn(T{})` with T the element type of `dtype`: float, double or Bf16.
template <typename Fn>
void dispatchFloating(at::ScalarType dtype, Fn&& fn) {
  switch (dtype) {
    case at::kFloat: return fn(float{});
    case at::kDouble: return fn(double{});
    case at::kBFloat16: return fn(Bf16{});
    default: TORCH_CHECK(false, "fused kernel: unsupported dtype ", dtype);
  }
}

// The dtype the kernels compute in for inputs of `dtype`, and take parameters in: float32 for bfloat16.
inline at::ScalarType accType(at::ScalarType dtype) { return dtype == at::kBFloat16 ? at::kFloat : dtype; }

inline void checkCpuFloat(const Tensor& t, const char* op, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", what, " must be on the CPU, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble || t.scalar_type() == at::kBFloat16, op, ": ", what,
              " must be float32, float64 or bfloat16, got ", t.scalar_type());
}

// Sums with eight independent accumulators: a single running sum is one long dependency chain (an add's latency
// per element); eight chains pipeline and vectorise. The order differs from ATen's reductions only in rounding.
// Operands may be stored (T) or already widened (Acc<T>); the sum is in Acc<T>.
template <typename A, typename B>
REPTOK_INLINE auto dot(const A* a, const B* b, int64_t n) {
  using C = decltype(toAcc(*a));
  C acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += toAcc(a[j + k]) * toAcc(b[j + k]);
  C s = 0;
  for (; j < n; j++) s += toAcc(a[j]) * toAcc(b[j]);
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename A, typename B, typename D>
REPTOK_INLINE auto dot3(const A* a, const B* b, const D* c, int64_t n) {
  using C = decltype(toAcc(*a));
  C acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += toAcc(a[j + k]) * toAcc(b[j + k]) * toAcc(c[j + k]);
  C s = 0;
  for (; j < n; j++) s += toAcc(a[j]) * toAcc(b[j]) * toAcc(c[j]);
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

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

// Exact GELU and its derivative (gelu.cc, token-mlp.cc): gelu(h) = h Φ(h), gelu'(h) = Φ(h) + h φ(h),
// Φ(h) = (1 + erf(h / √2)) / 2.

// erf for float32, branch-free so the loops around it vectorise (std::erf is a scalar libm call): a rational
// minimax fit, odd degree 13 over even degree 8, on [-4, 4] (beyond that erf is ±1 in float32), as Eigen and XLA
// evaluate it; within 4e-7 of erf everywhere (ATen's vectorised float erf is an approximation of that order too).
REPTOK_INLINE float erfApprox(float a) {
  const float x = std::min(4.f, std::max(-4.f, a)), x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return x * p / q;
}
REPTOK_INLINE double erfApprox(double x) { return std::erf(x); }

template <typename T>
REPTOK_INLINE T normalCdf(T h) { return T(0.5) * (T(1) + erfApprox(h * T(0.70710678118654752440))); }

template <typename T>
REPTOK_INLINE T geluGrad(T h) { return normalCdf(h) + h * (T(0.39894228040143267794) * expApprox(T(-0.5) * h * h)); }

}  // namespace reptok
