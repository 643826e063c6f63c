// Runtime facts and knobs: threads, the BLAS library in use, libtorch version, CUDA.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

#include <fstream>
#include <sstream>

namespace reptok {

static Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = toInt(info[0], "setNumThreads");
  if (n < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: the thread count must be at least 1");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

static Napi::Value getNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

// The BLAS that the dynamic linker actually loaded for libtorch (Debian switches libblas.so.3 through the
// alternatives system; the reference implementation is ~40x slower than OpenBLAS).
static Napi::Value blasLibraries(const Napi::CallbackInfo& info) {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> found;
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if ((path.find("blas") != std::string::npos || path.find("libmkl") != std::string::npos) &&
        std::find(found.begin(), found.end(), path) == found.end()) {
      found.push_back(path);
    }
  }
  auto arr = Napi::Array::New(info.Env(), found.size());
  for (size_t i = 0; i < found.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), found[i]));
  return arr;
}

// The kernel family OpenBLAS picked for this CPU ("SkylakeX", "Haswell", ...; "Prescott" is its slow generic
// fallback), or null when the BLAS is not OpenBLAS.
static Napi::Value blasCore(const Napi::CallbackInfo& info) {
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!fn) return info.Env().Null();
  return Napi::String::New(info.Env(), fn());
}

static Napi::Value version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                           std::to_string(TORCH_VERSION_PATCH));
}

static Napi::Value cudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::is_available() ? torch::cuda::device_count() : 0));
}

static Napi::Value cudaSynchronize(const Napi::CallbackInfo& info) {
  int64_t index = info[0].IsUndefined() ? -1 : toInt(info[0], "cudaSynchronize");
  return guard(info.Env(), [&]() -> Napi::Value { torch::cuda::synchronize(index); return info.Env().Undefined(); },
               [] { return std::string("cudaSynchronize"); });
}

static Napi::Value parallelInfo(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), at::get_parallel_info());
}

// Activations come and go every step (a 552×1536 float tensor is 3.4 MB). glibc serves blocks that size with
// mmap and unmaps them on free, or trims the heap top once more than twice the block is free, so the next tensor
// of that size faults in every page afresh: measured 828 page faults per 3.4 MB GELU output, 1.7 ms instead of
// 0.5 ms, in this process, where a warmed-up Python process had raised glibc's dynamic thresholds and faulted none.
// Fixed thresholds keep freed blocks in the heap for reuse; blocks above 64 MB (weights, huge batches) still come
// from mmap, and free heap beyond 512 MB goes back to the OS. Left alone when the user tunes malloc themselves.
static bool tuneMalloc() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables && std::strstr(tunables, "glibc.malloc.")) || std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_")) return false;
  return mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
#else
  return false;
#endif
}
static const bool mallocTuned = tuneMalloc();

static Napi::Value mallocTuning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), mallocTuned);
}

void initRuntime(Napi::Env env, Napi::Object exports) {
  exportFn<mallocTuning>(env, exports, "mallocTuning");
  exportFn<setNumThreads>(env, exports, "setNumThreads");
  exportFn<getNumThreads>(env, exports, "getNumThreads");
  exportFn<blasLibraries>(env, exports, "blasLibraries");
  exportFn<version>(env, exports, "version");
  exportFn<blasCore>(env, exports, "blasCore");
  exportFn<cudaDeviceCount>(env, exports, "cudaDeviceCount");
  exportFn<cudaSynchronize>(env, exports, "cudaSynchronize");
  exportFn<parallelInfo>(env, exports, "parallelInfo");
}

}  // namespace reptok
