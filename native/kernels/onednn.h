// oneDNN, as Debian's libtorch links it (libdnnl.so.2): its C GEMMs, and matmul primitives over weights packed once
// per parameter version. Everything is looked up at run time in the libraries already loaded with libtorch, so
// the addon also loads where oneDNN is absent or hidden (official LibTorch archives link it statically); callers
// then take aten's path. Used by linear.cc.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

namespace reptok {
namespace onednn {

// A symbol of the loaded libdnnl.so.2, or null.
void* find(const char* name);

// C = alpha · op(A) · op(B) + beta · C, row-major, C float32; returns dnnl_status_t (0 = ok). Null when absent.
template <typename T>
using Gemm = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const T* A, int64_t lda,
                     const T* B, int64_t ldb, float beta, float* C, int64_t ldc);
extern const Gemm<float> sgemm;
extern const Gemm<at::BFloat16> bf16gemm;

// ---- matmul primitives (oneDNN 2.x C API) -------------------------------------------------------------------------
// Whether this build and the loaded oneDNN run them (the build found oneDNN's headers and the library is the same
// 2.x minor version, whose memory descriptors are plain structs of the header's layout).
bool matmulAvailable();

// y (M, N) = x (M, K) · wᵀ [+ bias (N), float32]: x bf16 or float32 contiguous, w (N, K) float32 or bf16, y in x's
// dtype. The weight's packed copy, in x's dtype, is made by one reorder and kept per parameter version (views are
// packed per call). M, N, K > 0.
at::Tensor matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

// The packed copies kept for weights that still live: how many, and their bytes.
std::pair<int64_t, int64_t> packedCopies();

// Drops w's packed copy, if it has one (a weight that now runs on the GEMMs keeps one bf16 copy, not two).
void forget(const at::Tensor& w);

// The name of the implementation oneDNN picks for a matmul in `type` (bf16 or float32) of the tokenizer's shape
// (e.g. "brg:avx512_core_bf16", "brg:avx512_core_amx", "brg:avx512_core"); empty when matmulAvailable() is false.
std::string matmulImplementation(at::ScalarType type);

}  // namespace onednn
}  // namespace reptok
