// Linear layers through oneDNN's sgemm. Debian's libtorch links oneDNN (libdnnl.so.2) but routes float32 matmuls
// to OpenBLAS; on the tokenizer's shapes (M ≈ 500 rows of activations, K, N = 384…2304) oneDNN's JIT kernels take
// 0.80–0.90× OpenBLAS's time for the forward and both backward products (paired measurements on 2 AVX-512 cores;
// fc2-like 1536→384 ties, as do the generator's 1152↔4608 layers), and they run on the OpenMP pool that ATen
// already uses instead of a second set of BLAS threads. `reptok::linear` is y = x wᵀ + b with its own backward (gx = gy w, gw = gyᵀ x, gb = Σ gy), for
// CPU float32; src/engine/fused.ts sends everything else — and every process where oneDNN's sgemm is not found —
// to aten::linear. Registered in library.cc.
#include "../common.h"
#include "ops.h"

#include <torch/csrc/autograd/custom_function.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>

#include <dlfcn.h>

#include <cstring>

namespace reptok {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// dnnl_sgemm (oneDNN's C API, row-major): C = alpha · op(A) · op(B) + beta · C; returns dnnl_status_t (0 = success)
using Sgemm = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Looked up once in the libraries already loaded with libtorch; null when this libtorch has no shared oneDNN.
Sgemm findSgemm() {
  void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_NOLOAD);
  void* fn = lib ? dlsym(lib, "dnnl_sgemm") : dlsym(RTLD_DEFAULT, "dnnl_sgemm");
  return reinterpret_cast<Sgemm>(fn);
}
const Sgemm sgemm = findSgemm();

// A 2-D float matrix as oneDNN reads it: rows `ld` apart, transposed when its columns are the contiguous dim.
struct Operand {
  Tensor t;  // keeps a copy alive when one was needed
  const float* p;
  char trans;
  int64_t ld;
};
Operand operand(const Tensor& m, bool transpose) {
  if (m.stride(1) == 1 && m.stride(0) >= std::max<int64_t>(1, m.size(1))) return {m, m.data_ptr<float>(), transpose ? 'T' : 'N', m.stride(0)};
  if (m.stride(0) == 1 && m.stride(1) >= std::max<int64_t>(1, m.size(0))) return {m, m.data_ptr<float>(), transpose ? 'N' : 'T', m.stride(1)};
  const Tensor c = m.contiguous();
  return {c, c.data_ptr<float>(), transpose ? 'T' : 'N', std::max<int64_t>(1, c.size(1))};
}

// out (M, N) = op(a) · op(b) + beta · out, out contiguous
void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, float beta, Tensor& out) {
  const Operand A = operand(a, ta), B = operand(b, tb);
  const int64_t M = out.size(0), N = out.size(1), K = ta ? a.size(0) : a.size(1);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0.f) out.zero_();
    return;
  }
  const int status = sgemm(A.trans, B.trans, M, N, K, 1.f, A.p, A.ld, B.p, B.ld, beta, out.data_ptr<float>(), std::max<int64_t>(1, N));
  TORCH_CHECK(status == 0, "reptok::linear: oneDNN sgemm failed with status ", status, " for ", M, "x", K, " @ ", K, "x", N);
}

struct LinearFn : public torch::autograd::Function<LinearFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b) {
    const int64_t K = x.size(-1), N = w.size(0);
    const Tensor x2 = x.reshape({-1, K});
    Tensor y = at::empty({x2.size(0), N}, x.options());
    if (b && b->defined()) {
      const Tensor bc = b->contiguous();
      const float* bp = bc.data_ptr<float>();
      float* yp = y.data_ptr<float>();
      at::parallel_for(0, y.size(0), 64, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) std::memcpy(yp + i * N, bp, N * sizeof(float));
      });
      gemm(x2, false, w, true, 1.f, y);
    } else {
      gemm(x2, false, w, true, 0.f, y);
    }
    ctx->save_for_backward({x2, w});
    ctx->saved_data["bias"] = b && b->defined();
    auto sizes = x.sizes().vec();
    sizes.back() = N;
    return y.view(sizes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::linear");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x2 = saved[0], &w = saved[1];
    const Tensor gy = grads[0].reshape({-1, w.size(0)});
    Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = at::empty({x2.size(0), x2.size(1)}, x2.options());
      gemm(gy, false, w, false, 0.f, gx);  // (M, N) · (N, K)
      auto sizes = grads[0].sizes().vec();
      sizes.back() = x2.size(1);
      gx = gx.view(sizes);
    }
    if (ctx->needs_input_grad(1)) {
      gw = at::empty({w.size(0), w.size(1)}, w.options());
      gemm(gy, true, x2, false, 0.f, gw);  // (N, M) · (M, K)
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gb = gy.sum(0);
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b) {
  const char* op = "reptok::linear";
  // Under CPU autocast a linear layer runs in the lower precision: aten::linear's autocast kernel does the casting.
  if (at::autocast::is_cpu_enabled()) return at::linear(x, w, b);
  TORCH_CHECK(sgemm, op, ": oneDNN's sgemm was not found in this libtorch; use aten::linear");
  for (const Tensor* t : {&x, &w}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat, op, ": inputs must be float32 CPU tensors, got ", t->scalar_type(), " on ", t->device());
  }
  TORCH_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), op, ": x ", x.sizes(), " does not match weight ", w.sizes(), " (out, in)");
  if (b && b->defined()) {
    TORCH_CHECK(b->device().is_cpu() && b->scalar_type() == at::kFloat && b->dim() == 1 && b->size(0) == w.size(0), op, ": bias must be float32 (", w.size(0), "), got ", b->sizes());
  }
  return LinearFn::apply(x, w, b);
}

static Napi::Value onednnGemm(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), sgemm != nullptr);
}

void initLinear(Napi::Env env, Napi::Object exports) {
  exportFn<onednnGemm>(env, exports, "onednnGemm");
}

}  // namespace reptok
