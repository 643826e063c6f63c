// oneDNN's C GEMMs and matmul primitives; see onednn.h.
//
// Why primitives for bf16: oneDNN's gemm_bf16bf16f32 packs the weight into its kernel's layout on every call and
// returns float32, which the caller then rounds to bf16 in a second pass. A matmul primitive (brgemm on AVX512-BF16
// and AMX) reads a weight packed once — by one reorder from the float32 master, per parameter version — adds the
// bias and rounds to bf16 in registers. On the mid-size tokenizer's shapes, one core of an AVX512-BF16 Zen 4: 226–231
// GFLOP/s against 211–221 for the GEMM plus the rounding pass; the tokenizer's decoder evaluation takes 0.90–0.95×
// the time. AMX kernels lose more to per-call packing, as they multiply faster. linear.cc decides which calls use
// them (forward-only ones: packedForward).
#include "onednn.h"
#include "weight-cache.h"

#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#if REPTOK_WITH_ONEDNN_MATMUL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace reptok {
namespace onednn {

void* find(const char* name) {
  static void* const lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_NOLOAD);
  return lib ? dlsym(lib, name) : dlsym(RTLD_DEFAULT, name);
}
const Gemm<float> sgemm = reinterpret_cast<Gemm<float>>(find("dnnl_sgemm"));
const Gemm<at::BFloat16> bf16gemm = reinterpret_cast<Gemm<at::BFloat16>>(find("dnnl_gemm_bf16bf16f32"));

#if REPTOK_WITH_ONEDNN_MATMUL
namespace {

// ---- the C API, resolved once ---------------------------------------------------------------------------------------
#define REPTOK_DNNL_FUNCTIONS(X)                                                                                       \
  X(dnnl_version) X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_memory_desc_init_by_strides)                      \
  X(dnnl_memory_desc_init_by_tag) X(dnnl_memory_desc_equal) X(dnnl_memory_desc_get_size) X(dnnl_memory_create)          \
  X(dnnl_memory_destroy) X(dnnl_matmul_desc_init) X(dnnl_reorder_primitive_desc_create) X(dnnl_primitive_desc_create) \
  X(dnnl_primitive_desc_query) X(dnnl_primitive_desc_query_md) X(dnnl_primitive_desc_destroy) X(dnnl_primitive_create) \
  X(dnnl_primitive_execute) X(dnnl_primitive_destroy)
#define REPTOK_DNNL_MEMBER(name) decltype(&::name) name = reinterpret_cast<decltype(&::name)>(find(#name));
#define REPTOK_DNNL_FOUND(name) &&name != nullptr
struct Api {
  REPTOK_DNNL_FUNCTIONS(REPTOK_DNNL_MEMBER)
  bool complete() const { return true REPTOK_DNNL_FUNCTIONS(REPTOK_DNNL_FOUND); }
};
#undef REPTOK_DNNL_FOUND
#undef REPTOK_DNNL_MEMBER
#undef REPTOK_DNNL_FUNCTIONS

void check(dnnl_status_t status, const char* what) {
  TORCH_CHECK(status == dnnl_success, "reptok::linear: oneDNN's ", what, " failed with status ", int(status));
}

dnnl_data_type_t dnnlType(at::ScalarType t) {
  TORCH_CHECK(t == at::kFloat || t == at::kBFloat16, "reptok::linear: no oneDNN matmul for ", t);
  return t == at::kFloat ? dnnl_f32 : dnnl_bf16;
}

// A primitive and what executing it takes. Owns its oneDNN handles.
struct Primitive {
  const Api& api;
  dnnl_primitive_desc_t pd = nullptr;
  dnnl_primitive_t prim = nullptr;
  dnnl_memory_desc_t src{}, weights{}, bias{}, dst{};
  Primitive(const Api& api) : api(api) {}
  Primitive(const Primitive&) = delete;
  ~Primitive() {
    if (prim) api.dnnl_primitive_destroy(prim);
    if (pd) api.dnnl_primitive_desc_destroy(pd);
  }
  void create() {
    check(api.dnnl_primitive_create(&prim, pd), "primitive creation");
  }
};

// A weight's packed copy, bf16 or float32 (kept per parameter version in a WeightCache), usable while the primitive
// that asks for it reads the same layout.
struct Packed {
  dnnl_memory_desc_t layout;
  at::Tensor buffer;  // bytes
};

class State {
 public:
  Api api;
  bool ok = false;
  std::mutex mutex;

  State() {
    if (!api.complete()) return;
    const dnnl_version_t* v = api.dnnl_version();
    // memory descriptors are plain structs in 2.x whose layout may change between minor versions
    if (v->major != DNNL_VERSION_MAJOR || v->minor != DNNL_VERSION_MINOR) return;
    ok = api.dnnl_engine_create(&engine_, dnnl_cpu, 0) == dnnl_success && api.dnnl_stream_create(&stream_, engine_, dnnl_stream_default_flags) == dnnl_success;
  }

  // The matmul (M, K) · (K, N) -> (M, N) in `type` (bf16 or float32; the bias float32), created once per type, shape
  // and thread count (oneDNN splits the work by the threads there are when it creates the primitive).
  Primitive& matmul(at::ScalarType type, int64_t M, int64_t K, int64_t N, bool bias) {
    const Key key{int64_t(type), M, K, N, int64_t(bias), int64_t(at::get_num_threads())};
    auto it = matmuls_.find(key);
    if (it != matmuls_.end()) return *it->second;
    if (matmuls_.size() >= 256) matmuls_.clear();  // shapes come and go (batch sizes): a bound, not an LRU
    auto p = std::make_unique<Primitive>(api);
    const dnnl_data_type_t t = dnnlType(type);
    p->src = plain(M, K, t);
    p->dst = plain(M, N, t);
    p->bias = plain(1, N, dnnl_f32);
    dnnl_memory_desc_t anyWeights;
    const dnnl_dims_t dims{K, N};
    check(api.dnnl_memory_desc_init_by_tag(&anyWeights, 2, dims, t, dnnl_format_tag_any), "memory descriptor");
    dnnl_matmul_desc_t desc;
    check(api.dnnl_matmul_desc_init(&desc, &p->src, &anyWeights, bias ? &p->bias : nullptr, &p->dst), "matmul descriptor");
    check(api.dnnl_primitive_desc_create(&p->pd, &desc, nullptr, engine_, nullptr), "matmul primitive descriptor");
    p->weights = *api.dnnl_primitive_desc_query_md(p->pd, dnnl_query_weights_md, 0);
    p->create();
    return *matmuls_.emplace(key, std::move(p)).first->second;
  }

  // w's copy in the layout (and dtype) `mm` reads: packed by one reorder per parameter version and kept, or
  // rewritten in place when the weight has a new version (an optimizer step). Views are packed per call into
  // `scratch`, as caching a fresh TensorImpl per call would only fill the map.
  const void* packedWeight(const at::Tensor& w, const Primitive& mm, at::Tensor& scratch) {
    const auto buffer = [&] { return at::empty({int64_t(api.dnnl_memory_desc_get_size(&mm.weights))}, w.options().dtype(at::kByte)); };
    if (w.is_view()) {
      scratch = buffer();
      pack(w, mm.weights, scratch.data_ptr());
      return scratch.data_ptr();
    }
    auto* e = packed_.find(w);
    if (e && api.dnnl_memory_desc_equal(&e->value.layout, &mm.weights)) {
      if (!e->current(w)) {  // a new version of the same weight: repacked in place (no fresh block, no page faults)
        pack(w, mm.weights, e->value.buffer.data_ptr());
        e->version = w._version();
      }
      return e->value.buffer.data_ptr();
    }
    const at::Tensor fresh = buffer();
    pack(w, mm.weights, fresh.data_ptr());
    return packed_.put(w, Packed{mm.weights, fresh}).value.buffer.data_ptr();
  }

  // An argument of a primitive: its DNNL_ARG_* index, the memory's descriptor and data.
  using Arg = std::pair<int, std::pair<const dnnl_memory_desc_t*, const void*>>;
  void execute(const Primitive& p, const std::vector<Arg>& args) {
    std::vector<dnnl_exec_arg_t> exec;
    exec.reserve(args.size());
    for (const auto& [arg, md] : args) {
      dnnl_memory_t m;
      check(api.dnnl_memory_create(&m, md.first, engine_, const_cast<void*>(md.second)), "memory creation");
      exec.push_back({arg, m});
    }
    const dnnl_status_t status = api.dnnl_primitive_execute(p.prim, stream_, int(exec.size()), exec.data());
    for (const auto& a : exec) api.dnnl_memory_destroy(a.memory);
    check(status, "matmul");  // a CPU stream executes synchronously: the outputs are written on return
  }

  void forget(const at::Tensor& w) {
    std::lock_guard<std::mutex> lock(mutex);
    packed_.erase(w);
  }

  std::pair<int64_t, int64_t> copies() {
    std::lock_guard<std::mutex> lock(mutex);
    return packed_.liveUsage([](const Packed& p) { return int64_t(p.buffer.nbytes()); });
  }

  std::string implementation(at::ScalarType type) {
    std::lock_guard<std::mutex> lock(mutex);
    const Primitive& p = matmul(type, 552, 384, 1536, true);
    const char* name = nullptr;
    check(api.dnnl_primitive_desc_query(p.pd, dnnl_query_impl_info_str, 0, &name), "implementation query");
    return name ? name : "";
  }

 private:
  using Key = std::array<int64_t, 6>;
  dnnl_engine_t engine_ = nullptr;
  dnnl_stream_t stream_ = nullptr;
  std::map<Key, std::unique_ptr<Primitive>> matmuls_;
  // reorders from a weight's own layout (dtype, sizes, strides) into a packed layout: one per source layout,
  // replaced when a primitive asks for another packed layout
  std::map<std::array<int64_t, 5>, std::unique_ptr<Primitive>> reorders_;
  WeightCache<Packed> packed_;

  dnnl_memory_desc_t plain(int64_t rows, int64_t cols, dnnl_data_type_t type) {
    return strided(rows, cols, type, cols, 1);
  }
  dnnl_memory_desc_t strided(int64_t rows, int64_t cols, dnnl_data_type_t type, int64_t rowStride, int64_t colStride) {
    dnnl_memory_desc_t md;
    const dnnl_dims_t dims{rows, cols}, strides{rowStride, colStride};
    check(api.dnnl_memory_desc_init_by_strides(&md, 2, dims, type, strides), "memory descriptor");
    return md;
  }

  // w (N, K) as the weights operand (K, N) = wᵀ
  void pack(const at::Tensor& w, const dnnl_memory_desc_t& layout, void* dst) {
    const int64_t rows = w.size(1), cols = w.size(0), rs = w.stride(1), cs = w.stride(0);
    const std::array<int64_t, 5> key{int64_t(w.scalar_type()), rows, cols, rs, cs};
    auto it = reorders_.find(key);
    if (it == reorders_.end() || !api.dnnl_memory_desc_equal(&it->second->dst, &layout)) {
      auto r = std::make_unique<Primitive>(api);
      r->src = strided(rows, cols, dnnlType(w.scalar_type()), rs, cs);
      r->dst = layout;
      check(api.dnnl_reorder_primitive_desc_create(&r->pd, &r->src, engine_, &r->dst, engine_, nullptr), "reorder primitive descriptor");
      r->create();
      if (reorders_.size() >= 256) reorders_.clear();
      it = reorders_.insert_or_assign(key, std::move(r)).first;
    }
    execute(*it->second, {{DNNL_ARG_FROM, {&it->second->src, w.data_ptr()}}, {DNNL_ARG_TO, {&it->second->dst, dst}}});
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

bool matmulAvailable() { return state().ok; }

at::Tensor matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  State& s = state();
  TORCH_CHECK(s.ok, "reptok::linear: oneDNN's matmul primitives are not available in this build");
  TORCH_CHECK((x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat) && x.is_contiguous() && x.dim() == 2,
              "reptok::linear: the matmul's input must be a contiguous bf16 or float32 matrix");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  at::Tensor y = at::empty({M, N}, x.options()), scratch;
  std::lock_guard<std::mutex> lock(s.mutex);
  const Primitive& mm = s.matmul(x.scalar_type(), M, K, N, bias.defined());
  const void* wp = s.packedWeight(w, mm, scratch);
  std::vector<State::Arg> args{{DNNL_ARG_SRC, {&mm.src, x.data_ptr()}}, {DNNL_ARG_WEIGHTS, {&mm.weights, wp}}, {DNNL_ARG_DST, {&mm.dst, y.data_ptr()}}};
  if (bias.defined()) args.push_back({DNNL_ARG_BIAS, {&mm.bias, bias.data_ptr()}});
  s.execute(mm, args);
  return y;
}

void forget(const at::Tensor& w) {
  if (state().ok) state().forget(w);
}

std::pair<int64_t, int64_t> packedCopies() { return state().ok ? state().copies() : std::pair<int64_t, int64_t>{0, 0}; }

std::string matmulImplementation(at::ScalarType type) { return state().ok ? state().implementation(type) : ""; }

#else  // built without oneDNN's headers: the GEMMs only

bool matmulAvailable() { return false; }
void forget(const at::Tensor&) {}
std::pair<int64_t, int64_t> packedCopies() { return {0, 0}; }
at::Tensor matmul(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  TORCH_CHECK(false, "reptok::linear: this build has no oneDNN matmul primitives (rebuild with libdnnl-dev installed)");
}
std::string matmulImplementation(at::ScalarType) { return ""; }

#endif

}  // namespace onednn
}  // namespace reptok
