// Random generators: the global seed, and independent generators for reproducible data and noise streams.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <mutex>

namespace reptok {

static uint64_t toSeed(const Napi::Value& v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  int64_t s = toInt(v, what);
  if (s < 0) throw Napi::RangeError::New(v.Env(), what + ": seeds are non-negative integers");
  return static_cast<uint64_t>(s);
}

static Napi::Value manualSeed(const Napi::CallbackInfo& info) {
  uint64_t seed = toSeed(info[0], "manualSeed");
  return guard(info.Env(), [&]() -> Napi::Value { at::manual_seed(seed); return info.Env().Undefined(); }, [] { return std::string("manualSeed"); });
}

// newGenerator(device: string, seed) -> Generator
static Napi::Value newGenerator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dev = info[0].IsString() ? std::string(info[0].As<Napi::String>()) : "cpu";
  uint64_t seed = toSeed(info[1], "Generator seed");
  return guard(
      env,
      [&]() -> Napi::Value {
        c10::Device d(dev);
        at::Generator g;
        if (d.is_cpu()) {
          g = at::detail::createCPUGenerator(seed);
        } else if (d.is_cuda()) {
          g = at::detail::getCUDAHooks().getDefaultCUDAGenerator(d.index() < 0 ? 0 : d.index()).clone();
          std::lock_guard<std::mutex> lock(g.mutex());
          g.set_current_seed(seed);
        } else {
          TORCH_CHECK(false, "generators are supported on cpu and cuda, not ", d.str());
        }
        return wrapGenerator(env, std::move(g));
      },
      [&]() { return "Generator(" + dev + ")"; });
}

static Napi::Value generatorSeed(const Napi::CallbackInfo& info) {
  at::Generator g = unwrapGenerator(info[0], "Generator.seed");
  uint64_t seed = toSeed(info[1], "Generator.seed");
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(seed);
  return info.Env().Undefined();
}

static Napi::Value generatorGetState(const Napi::CallbackInfo& info) {
  at::Generator g = unwrapGenerator(info[0], "Generator.getState");
  return guard(
      info.Env(),
      [&]() -> Napi::Value {
        std::lock_guard<std::mutex> lock(g.mutex());
        return wrapTensor(info.Env(), g.get_state());
      },
      [] { return std::string("Generator.getState"); });
}

static Napi::Value generatorSetState(const Napi::CallbackInfo& info) {
  at::Generator g = unwrapGenerator(info[0], "Generator.setState");
  const at::Tensor& state = unwrapTensor(info[1], "Generator.setState");
  return guard(
      info.Env(),
      [&]() -> Napi::Value {
        std::lock_guard<std::mutex> lock(g.mutex());
        g.set_state(state);
        return info.Env().Undefined();
      },
      [&] { return "Generator.setState(" + describe(state) + ")"; });
}

// The process-wide default CPU generator (what manualSeed seeds), so its state can be saved with a checkpoint.
static Napi::Value defaultGenerator(const Napi::CallbackInfo& info) {
  return wrapGenerator(info.Env(), at::detail::getDefaultCPUGenerator());
}

void initRandom(Napi::Env env, Napi::Object exports) {
  exportFn<manualSeed>(env, exports, "manualSeed");
  exportFn<newGenerator>(env, exports, "newGenerator");
  exportFn<generatorSeed>(env, exports, "generatorSeed");
  exportFn<generatorGetState>(env, exports, "generatorGetState");
  exportFn<generatorSetState>(env, exports, "generatorSetState");
  exportFn<defaultGenerator>(env, exports, "defaultGenerator");
}

}  // namespace reptok
