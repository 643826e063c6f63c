// What the fused kernels in this folder share: the multiversioned (SIMD) build of their element loops, the input
// check, and the row helpers more than one kernel uses. Included only by the fused kernels' files: it switches on
// multiply-add contraction for the rest of the file that includes it.
#pragma once

#include "../common.h"

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

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline void checkCpuFloat(const Tensor& t, const char* op, const char* what) {
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

}  // namespace reptok
