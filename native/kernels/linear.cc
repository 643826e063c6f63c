// Linear layers through oneDNN's GEMMs. Debian's libtorch links oneDNN (libdnnl.so.2) but routes float32 matmuls
// to OpenBLAS; on the tokenizer's shapes (M ≈ 500 rows of activations, K, N = 384…2304) oneDNN's JIT kernels take
// 0.80–0.90× OpenBLAS's time for the forward and both backward products (paired measurements on 2 AVX-512 cores;
// fc2-like 1536→384 ties, as do the generator's 1152↔4608 layers), and they run on the OpenMP pool that ATen
// already uses instead of a second set of BLAS threads.
//
// bfloat16: under CPU autocast, or when an input is bfloat16, the products run oneDNN's gemm_bf16bf16f32 (bf16
// operands, float32 accumulation and output: vdpbf16ps on AVX512-BF16, AMX tiles where the CPU has them). On these
// shapes it runs at 2.0× sgemm's rate (213 vs 106 GFLOP/s per core on AVX512-BF16 Zen 4: the instruction's peak
// ratio; docs/bf16.md). The weight's bf16 copy is made once per parameter version (cache below), not per call as
// autocast's cast does outside its region (copies of weights that are gone are dropped when the map has doubled
// since the last sweep); the bias is added in float32 (in the pass that rounds the float32 result), the weight
// gradient comes out of the GEMM in float32 (no bf16 rounding of gw, unlike autocast's bf16 addmm), and only the
// activations (y, gx) are rounded to bf16 — autocast's convention for a linear layer's output. Forward-only bf16
// calls (no graph) instead run oneDNN matmul primitives over the weight packed once per version (onednn.h), and so
// do float32 ones on weights marked for inference (packForInference); packedForward below says when.
//
// `reptok::linear` is y = x wᵀ + b with its own backward (gx = gy w, gw = gyᵀ x, gb = Σ gy), for CPU float32 and
// bfloat16; src/engine/fused.ts sends everything else — and every process where oneDNN's GEMMs are not found — to
// aten::linear. Registered in library.cc.
#include "fused-common.h"
#include "onednn.h"
#include "ops.h"
#include "weight-cache.h"

#include <ATen/autocast_mode.h>

#include <mutex>

namespace reptok {
namespace {

using onednn::bf16gemm;
using onednn::sgemm;

// A 2-D matrix as oneDNN reads it: rows `ld` apart, transposed when its columns are the contiguous dim.
template <typename T>
struct Operand {
  Tensor t;  // keeps a copy alive when one was needed
  const T* p;
  char trans;
  int64_t ld;
};
template <typename T>
Operand<T> operand(const Tensor& m, bool transpose) {
  if (m.stride(1) == 1 && m.stride(0) >= std::max<int64_t>(1, m.size(1))) return {m, m.data_ptr<T>(), transpose ? 'T' : 'N', m.stride(0)};
  if (m.stride(0) == 1 && m.stride(1) >= std::max<int64_t>(1, m.size(0))) return {m, m.data_ptr<T>(), transpose ? 'N' : 'T', m.stride(1)};
  const Tensor c = m.contiguous();
  return {c, c.data_ptr<T>(), transpose ? 'T' : 'N', std::max<int64_t>(1, c.size(1))};
}

// out (M, N) float32 contiguous = op(a) · op(b) + beta · out; a, b float32 (sgemm) or bfloat16 (gemm_bf16bf16f32)
void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, float beta, Tensor& out) {
  const int64_t M = out.size(0), N = out.size(1), K = ta ? a.size(0) : a.size(1);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0.f) out.zero_();
    return;
  }
  int status;
  if (a.scalar_type() == at::kBFloat16) {
    const auto A = operand<at::BFloat16>(a, ta), B = operand<at::BFloat16>(b, tb);
    status = bf16gemm(A.trans, B.trans, M, N, K, 1.f, A.p, A.ld, B.p, B.ld, beta, out.data_ptr<float>(), std::max<int64_t>(1, N));
  } else {
    const auto A = operand<float>(a, ta), B = operand<float>(b, tb);
    status = sgemm(A.trans, B.trans, M, N, K, 1.f, A.p, A.ld, B.p, B.ld, beta, out.data_ptr<float>(), std::max<int64_t>(1, N));
  }
  TORCH_CHECK(status == 0, "reptok::linear: oneDNN GEMM (", a.scalar_type(), ") failed with status ", status, " for ", M, "x", K, " @ ", K, "x", N);
}

// ---- bf16 element loops: ATen's float32 -> bf16 copy runs at ~2.5 ns per element (the generator's bf16 training
// step spent 0.75 s of 1.4 s re-casting its weights after each optimizer step); y.to(bf16) after a bias prefill and
// gy.sum(0, kFloat) (which converts gy first) are two passes each ---------------------------------------------------

// float32 rows (M, N) [+ bias (N)] -> bfloat16, rounded to nearest even: for rows [begin, end)
REPTOK_SIMD_CLONES void narrowRows(const float* src, const float* bias, int64_t N, Bf16* dst, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const float* s = src + i * N;
    Bf16* d = dst + i * N;
    if (bias)
      for (int64_t j = 0; j < N; j++) d[j] = fromAcc<Bf16>(s[j] + bias[j]);
    else
      for (int64_t j = 0; j < N; j++) d[j] = fromAcc<Bf16>(s[j]);
  }
}
// out (M, N) bfloat16 contiguous = y (M, N) float32 contiguous [+ bias (N), float32 contiguous], rounded
void narrowInto(const Tensor& y, const Tensor& bias, Tensor& out) {
  const int64_t N = y.size(-1), M = N ? y.numel() / N : 0;
  const float* src = y.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  Bf16* dst = ptr<Bf16>(out);
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, N));
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) { narrowRows(src, bp, N, dst, begin, end); });
}
Tensor narrowToBf16(const Tensor& y, const Tensor& bias = Tensor()) {
  Tensor out = at::empty(y.sizes(), y.options().dtype(at::kBFloat16));
  narrowInto(y, bias, out);
  return out;
}
// t as bfloat16: itself when it is; float32 rounded to nearest even (a contiguous copy first if it is strided)
Tensor toBf16(const Tensor& t) {
  if (t.scalar_type() == at::kBFloat16) return t;
  return t.dim() == 0 ? t.to(at::kBFloat16) : narrowToBf16(t.contiguous());
}

// Σ over rows of a bfloat16 (M, N) matrix, in float32, for columns [begin, end)
REPTOK_SIMD_CLONES void columnSums(const Bf16* g, int64_t M, int64_t N, float* out, int64_t begin, int64_t end) {
  for (int64_t j = begin; j < end; j++) out[j] = 0.f;
  for (int64_t i = 0; i < M; i++) {
    const Bf16* row = g + i * N;
    for (int64_t j = begin; j < end; j++) out[j] += toAcc(row[j]);
  }
}
Tensor biasGrad(const Tensor& gy) {  // gy (M, N)
  if (gy.scalar_type() != at::kBFloat16) return gy.sum(0, false, at::kFloat);
  const Tensor g = gy.contiguous();
  const int64_t M = g.size(0), N = g.size(1);
  Tensor out = at::empty({N}, g.options().dtype(at::kFloat));
  const Bf16* gp = ptr<Bf16>(g);
  float* op = out.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t begin, int64_t end) { columnSums(gp, M, N, op, begin, end); });
  return out;
}

// ---- bf16 copies of weights, one per parameter version (weight-cache.h) ------------------------------------------
std::mutex cacheMutex;
WeightCache<Tensor> cache;

Tensor bf16Weight(const Tensor& w) {
  if (w.scalar_type() == at::kBFloat16) return w;
  at::NoGradGuard noGrad;
  // Views (a fresh TensorImpl on every call) are cast per call: caching them would only fill the map.
  if (w.is_view()) return toBf16(w);
  std::lock_guard<std::mutex> lock(cacheMutex);
  auto* e = cache.find(w);
  if (e && e->current(w)) return e->value;
  onednn::forget(w);  // a weight on the GEMMs keeps its plain copy only (packedForward)
  if (e && e->value.use_count() == 1 && w.is_contiguous() && e->value.sizes() == w.sizes()) {
    // a new version of the same weight (an optimizer step), its old copy held by nobody else: rewritten in place,
    // which spares the allocator a fresh block per weight per step (and the page faults of one)
    narrowInto(w, Tensor(), e->value);
    e->version = w._version();
    return e->value;
  }
  return cache.put(w, toBf16(w)).value;
}

// Whether a forward-only call (no graph: noGrad, or nothing requires a gradient) runs as a oneDNN matmul primitive
// over the weight's packed copy (onednn.h), which adds the bias (and rounds to bf16) in registers.
//
// bf16: yes unless the weight has a bf16 copy of its current version for the GEMMs. Each weight keeps one bf16 copy,
// not two: packed while it only runs forward (inference), plain once it backpropagates (training, frozen layers
// included), as the input gradient's product needs the weight in another layout. Keeping both cost the tokenizer's
// bf16 training step 60–70 MB of peak RSS (7%) for 2–4% of its time. Repacking a weight in training after every
// step does not pay either: oneDNN's reorder takes 0.6–1.2 ns per element from a cold float32 weight, the bf16 cast
// below 0.25.
//
// float32: only for weights marked by packForInference (the pipeline's models). A packed float32 copy is a second
// copy of the weight at full size, so a process that also trains (or keeps the frozen encoder next to the one it
// fine-tunes) must not get one unasked; where asked, the generator's guided sampling step takes 0.84× the time of
// the GEMMs, which pack the weight again on every call.
//
// Empty products take the GEMMs.
WeightCache<bool> inference;  // the weights marked by packForInference (guarded by cacheMutex)

// Unmarks w and drops its packed copy; with `bf16Copy`, its plain bf16 copy too.
void dropCopies(const Tensor& w, bool bf16Copy) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    inference.erase(w);
    if (bf16Copy) cache.erase(w);
  }
  onednn::forget(w);
}

bool packedForward(const Tensor& w, bool bf16, int64_t M, int64_t K, int64_t N) {
  if (M == 0 || K == 0 || N == 0 || !onednn::matmulAvailable()) return false;
  std::lock_guard<std::mutex> lock(cacheMutex);
  if (!bf16) return inference.find(w) != nullptr;
  const auto* e = cache.find(w);
  return !(e && e->current(w));
}

// ---- the autograd function ----------------------------------------------------------------------------------------
// Float32 computes in float32 throughout; bf16 computes products on bf16 operands into float32 and rounds the
// activations it returns (y, gx) to `outType`/x's dtype.
struct LinearFn : public torch::autograd::Function<LinearFn> {
  // packed: a forward-only call on the weight's packed copy (packedForward, decided by the caller: this function
  // runs with gradient recording off, whatever the caller's mode)
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b, bool bf16, bool packed) {
    const int64_t K = x.size(-1), N = w.size(0);
    const Tensor x2 = bf16 ? toBf16(x.reshape({-1, K})) : x.reshape({-1, K});
    const Tensor bias = b && b->defined() ? b->to(at::kFloat).contiguous() : Tensor();
    Tensor y;
    if (packed) {  // bias (and bf16 rounding) in oneDNN's registers
      y = onednn::matmul(x2.contiguous(), w, bias);
    } else {
      const Tensor wm = bf16 ? bf16Weight(w) : w;
      y = at::empty({x2.size(0), N}, x.options().dtype(at::kFloat));  // (M, N)
      if (bias.defined() && !bf16) {  // float32: the bias prefilled, the GEMM adds onto it (beta = 1)
        const float* bp = bias.data_ptr<float>();
        float* yp = y.data_ptr<float>();
        at::parallel_for(0, y.size(0), 64, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; i++) std::memcpy(yp + i * N, bp, N * sizeof(float));
        });
        gemm(x2, false, wm, true, 1.f, y);
      } else {  // bf16: the bias is added in the pass that rounds y to bf16 (one pass over y fewer than a prefill)
        gemm(x2, false, wm, true, 0.f, y);
        if (bf16) y = narrowToBf16(y, bias);
      }
    }
    // x is needed only for the weight's gradient: a frozen layer (DINOv2's blocks under RepTok) keeps none of its
    // inputs alive for the backward pass
    ctx->save_for_backward({w.requires_grad() ? x2 : Tensor(), w});
    ctx->saved_data["bias"] = b && b->defined();
    ctx->saved_data["bf16"] = bf16;
    ctx->saved_data["xType"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["K"] = K;
    auto sizes = x.sizes().vec();
    sizes.back() = N;
    return y.view(sizes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::linear");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x2 = saved[0], &w = saved[1];
    const bool bf16 = ctx->saved_data["bf16"].toBool();
    const auto xType = static_cast<at::ScalarType>(ctx->saved_data["xType"].toInt());
    const int64_t K = ctx->saved_data["K"].toInt(), N = w.size(0);
    const Tensor gy = grads[0].reshape({-1, N});
    const Tensor gym = bf16 ? toBf16(gy) : gy;
    const int64_t M = gy.size(0);
    Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = at::empty({M, K}, gy.options().dtype(at::kFloat));
      gemm(gym, false, bf16 ? bf16Weight(w) : w, false, 0.f, gx);  // (M, N) · (N, K)
      if (bf16 && xType == at::kBFloat16) gx = narrowToBf16(gx);
      auto sizes = grads[0].sizes().vec();
      sizes.back() = K;
      gx = gx.to(xType).view(sizes);
    }
    if (ctx->needs_input_grad(1)) {
      gw = at::empty({w.size(0), w.size(1)}, w.options().dtype(at::kFloat));
      gemm(gym, true, x2, false, 0.f, gw);  // (N, M) · (M, K)
      gw = gw.to(w.scalar_type());
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gb = biasGrad(gy);
    return {gx, gw, gb, Tensor(), Tensor()};
  }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& b) {
  const char* op = "reptok::linear";
  const bool autocast = at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16;
  const bool bf16 = autocast || x.scalar_type() == at::kBFloat16 || w.scalar_type() == at::kBFloat16;
  // A libtorch whose oneDNN lacks the bf16 GEMM: aten::linear (and autocast's kernel) computes the layer instead.
  if (bf16 && !bf16gemm) return at::linear(x, w, b);
  TORCH_CHECK(sgemm, op, ": oneDNN's sgemm was not found in this libtorch; use aten::linear");
  for (const Tensor* t : {&x, &w}) {
    TORCH_CHECK(t->device().is_cpu() && (t->scalar_type() == at::kFloat || t->scalar_type() == at::kBFloat16), op,
                ": inputs must be float32 or bfloat16 CPU tensors, got ", t->scalar_type(), " on ", t->device());
  }
  TORCH_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), op, ": x ", x.sizes(), " does not match weight ", w.sizes(), " (out, in)");
  if (b && b->defined()) {
    TORCH_CHECK(b->device().is_cpu() && (b->scalar_type() == at::kFloat || b->scalar_type() == at::kBFloat16) && b->dim() == 1 && b->size(0) == w.size(0), op,
                ": bias must be float32 or bfloat16 (", w.size(0), "), got ", b->scalar_type(), " ", b->sizes());
  }
  // Outside autocast, mixed dtypes are an error, as in aten::linear: casting is autocast's decision, not ours.
  TORCH_CHECK(autocast || (x.scalar_type() == w.scalar_type() && (!b || !b->defined() || b->scalar_type() == w.scalar_type())), op,
              ": x (", x.scalar_type(), "), weight (", w.scalar_type(), ")", b && b->defined() ? " and bias" : "",
              " must have one dtype outside autocast; cast them, or run under autocast()");
  // The function does its own casting: below autocast (whose kernel would cast every input on each call) it must
  // see the float32 master weight, to reuse its bf16 copy.
  c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::DispatchKey::AutocastCPU);
  // Decided here, not in LinearFn::forward, which runs with gradient recording off whatever the caller's mode.
  const bool graph = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b && b->defined() && b->requires_grad()));
  const int64_t K = x.size(-1);
  const bool packed = !graph && packedForward(w, bf16, K ? x.numel() / K : 0, K, w.size(0));
  return LinearFn::apply(x, w, b, bf16, packed);
}

// onednnGemm() -> {float32, bfloat16: whether each GEMM was found, isa: the instruction set oneDNN's kernels use
// (dnnl_cpu_isa_t bits; -1 without oneDNN), isaName}. Cheap: src/engine/fused.ts asks at load.
static Napi::Value onednnGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("float32", sgemm != nullptr);
  o.Set("bfloat16", bf16gemm != nullptr);
  const auto isa = reinterpret_cast<int (*)()>(onednn::find("dnnl_get_effective_cpu_isa"));
  const auto isaName = reinterpret_cast<const char* (*)(int)>(onednn::find("dnnl_cpu_isa2str"));
  o.Set("isa", isa ? isa() : -1);
  o.Set("isaName", isa && isaName ? Napi::Value(Napi::String::New(env, isaName(isa()))) : env.Null());
  return o;
}

// onednnMatmul(dtype) -> the implementation of the matmul primitives in 'bfloat16' or 'float32' (e.g.
// "brg:avx512_core_bf16"), or null when there are none (linear layers run on the GEMMs only). Creates oneDNN's engine
// and a primitive on first use, so it is asked only where the answer is shown (runtimeInfo), not at load.
static Napi::Value onednnMatmul(const Napi::CallbackInfo& info) {
  const std::string dtype = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  TORCH_CHECK(dtype == "bfloat16" || dtype == "float32", "onednnMatmul: dtype must be 'bfloat16' or 'float32', got '", dtype, "'");
  const std::string matmul = onednn::matmulImplementation(dtype == "float32" ? at::kFloat : at::kBFloat16);
  return matmul.empty() ? info.Env().Null() : Napi::Value(Napi::String::New(info.Env(), matmul));
}

// packForInference(weights, enable) -> how many of them float32 forward-only calls now run on packed copies (0
// without oneDNN's matmul primitives: nothing is marked then). Marks each weight, or with enable false unmarks it and
// drops its packed copy (packedForward above). A mark lasts while the tensor lives.
static Napi::Value packForInference(const Napi::CallbackInfo& info) {
  const auto weights = toTensorVector(info[0], "packForInference weights");
  const bool enable = toBool(info[1], "packForInference enable");
  int64_t marked = 0;
  for (const Tensor& w : weights) {
    if (!enable) {
      dropCopies(w, false);
    } else if (onednn::matmulAvailable() && !w.is_view()) {
      std::lock_guard<std::mutex> lock(cacheMutex);
      inference.put(w, true);
      marked++;
    }
  }
  return Napi::Number::New(info.Env(), double(marked));
}

// dropWeightCopies(weights): frees their bf16 and packed copies now and unmarks them (Module.dispose): an entry of a
// weight that is gone would otherwise keep its copy until the next sweep of the cache (weight-cache.h).
static Napi::Value dropWeightCopies(const Napi::CallbackInfo& info) {
  for (const Tensor& w : toTensorVector(info[0], "dropWeightCopies weights")) dropCopies(w, true);
  return info.Env().Undefined();
}

// weightCopies() -> {bf16: {count, bytes}, packed: {count, bytes}}: the copies of weights kept for the products, of
// weights that still live: plain bf16 ones for the GEMMs (bf16Weight), packed ones for the matmul primitives.
static Napi::Value weightCopies(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto entry = [&](std::pair<int64_t, int64_t> n) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", double(n.first));
    o.Set("bytes", double(n.second));
    return o;
  };
  std::pair<int64_t, int64_t> bf16;
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    bf16 = cache.liveUsage([](const Tensor& t) { return int64_t(t.nbytes()); });
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("bf16", entry(bf16));
  o.Set("packed", entry(onednn::packedCopies()));
  return o;
}

void initLinear(Napi::Env env, Napi::Object exports) {
  exportFn<weightCopies>(env, exports, "weightCopies");
  exportFn<dropWeightCopies>(env, exports, "dropWeightCopies");
  exportFn<onednnGemm>(env, exports, "onednnGemm");
  exportFn<onednnMatmul>(env, exports, "onednnMatmul");
  exportFn<packForInference>(env, exports, "packForInference");
}

}  // namespace reptok
