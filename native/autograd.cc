// Autograd entry points: backward, grad access, grad mode.
#include "common.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <ATen/autocast_mode.h>

namespace reptok {

static std::vector<at::Tensor> optionalTensors(const Napi::Value& v, size_t n, const std::string& what) {
  std::vector<at::Tensor> out(n);
  if (v.IsNull() || v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), what + ": expected an array");
  auto a = v.As<Napi::Array>();
  if (a.Length() != n) throw Napi::TypeError::New(v.Env(), what + ": expected " + std::to_string(n) + " entries");
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNull() && !x.IsUndefined()) out[i] = unwrapTensor(x, what);
  }
  return out;
}

static std::string listContext(const char* name, const std::vector<at::Tensor>& ts) {
  std::string s = std::string(name) + "(";
  for (size_t i = 0; i < ts.size(); i++) s += (i ? ", " : "") + describe(ts[i]);
  return s + ")";
}

// backward(tensors[], grads[]|null, retainGraph, createGraph)
static Napi::Value backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tensors = toTensorVector(info[0], "backward");
  auto grads = optionalTensors(info[1], tensors.size(), "backward grads");
  bool retain = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  bool create = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  return guard(
      env,
      [&]() -> Napi::Value {
        torch::autograd::backward(tensors, grads, retain, create);
        return env.Undefined();
      },
      [&]() { return listContext("backward", tensors); });
}

// grad(outputs[], inputs[], gradOutputs[]|null, retainGraph, createGraph, allowUnused) -> (Tensor|null)[]
static Napi::Value grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto outputs = toTensorVector(info[0], "grad outputs");
  auto inputs = toTensorVector(info[1], "grad inputs");
  auto gradOutputs = optionalTensors(info[2], outputs.size(), "grad gradOutputs");
  bool retain = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  bool create = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  bool allowUnused = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  return guard(
      env,
      [&]() -> Napi::Value {
        auto gs = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
        auto arr = Napi::Array::New(env, gs.size());
        for (size_t i = 0; i < gs.size(); i++) arr.Set(static_cast<uint32_t>(i), wrapTensor(env, gs[i]));
        return arr;
      },
      [&]() { return listContext("grad", outputs); });
}

static Napi::Value getGrad(const Napi::CallbackInfo& info) {
  return wrapTensor(info.Env(), unwrapTensor(info[0], "grad").grad());
}

static Napi::Value hasGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "hasGrad").grad().defined());
}

static Napi::Value setGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "setGrad");
  at::Tensor g;
  if (!info[1].IsNull() && !info[1].IsUndefined()) g = unwrapTensor(info[1], "setGrad value");
  return guard(
      env,
      [&]() -> Napi::Value {
        if (g.defined()) {
          TORCH_CHECK(g.sizes() == t.sizes(), "gradient shape ", g.sizes(), " does not match the tensor's shape ", t.sizes());
          TORCH_CHECK(g.scalar_type() == t.scalar_type(), "gradient dtype ", dtypeName(g.scalar_type()), " does not match ", dtypeName(t.scalar_type()));
        }
        const_cast<at::Tensor&>(t).mutable_grad() = g;
        return env.Undefined();
      },
      [&]() { return "setGrad(" + describe(t) + ")"; });
}

static Napi::Value setRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "requiresGrad_");
  bool flag = toBool(info[1], "requiresGrad_");
  return guard(
      env,
      [&]() -> Napi::Value {
        const_cast<at::Tensor&>(t).requires_grad_(flag);
        return env.Undefined();
      },
      [&]() { return "requiresGrad_(" + describe(t) + ")"; });
}

static Napi::Value isGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

static Napi::Value setGradEnabled(const Napi::CallbackInfo& info) {
  at::GradMode::set_enabled(toBool(info[0], "setGradEnabled"));
  return info.Env().Undefined();
}

// setAutocastCpu(enabled, dtypeCode): mixed precision on the CPU (bfloat16 matmuls and convolutions, float32 where
// precision matters, as libtorch's autocast lists decide). Regions nest: disabling ends the innermost one, and
// autocast stays on until the outermost ends. Returns whether it was enabled before.
static Napi::Value setAutocastCpu(const Napi::CallbackInfo& info) {
  bool enable = toBool(info[0], "setAutocastCpu");
  bool before = at::autocast::is_cpu_enabled();
  if (enable) {
    at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(toInt(info[1], "setAutocastCpu dtype")));
    at::autocast::increment_nesting();
    at::autocast::set_cpu_enabled(true);
  } else if (before && at::autocast::decrement_nesting() == 0) {  // an inner region's end leaves the outer on
    at::autocast::clear_cache();
    at::autocast::set_cpu_enabled(false);
  }
  return Napi::Boolean::New(info.Env(), before);
}

// setAutocastCuda(enabled, dtypeCode): the same on CUDA (bfloat16 or float16 matmuls and convolutions).
static Napi::Value setAutocastCuda(const Napi::CallbackInfo& info) {
  bool enable = toBool(info[0], "setAutocastCuda");
  bool before = at::autocast::is_enabled();
  if (enable) {
    at::autocast::set_autocast_gpu_dtype(static_cast<at::ScalarType>(toInt(info[1], "setAutocastCuda dtype")));
    at::autocast::increment_nesting();
    at::autocast::set_enabled(true);
  } else if (before && at::autocast::decrement_nesting() == 0) {  // an inner region's end leaves the outer on
    at::autocast::clear_cache();
    at::autocast::set_enabled(false);
  }
  return Napi::Boolean::New(info.Env(), before);
}

void initAutograd(Napi::Env env, Napi::Object exports) {
  exportFn<backward>(env, exports, "backward");
  exportFn<grad>(env, exports, "autogradGrad");
  exportFn<getGrad>(env, exports, "getGrad");
  exportFn<hasGrad>(env, exports, "hasGrad");
  exportFn<setGrad>(env, exports, "setGrad");
  exportFn<setRequiresGrad>(env, exports, "setRequiresGrad");
  exportFn<isGradEnabled>(env, exports, "isGradEnabled");
  exportFn<setGradEnabled>(env, exports, "setGradEnabled");
  exportFn<setAutocastCpu>(env, exports, "setAutocastCpu");
  exportFn<setAutocastCuda>(env, exports, "setAutocastCuda");
}

}  // namespace reptok
