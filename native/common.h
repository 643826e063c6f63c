// Shared pieces of the addon: handle boxes, wrapping, descriptions and error translation.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <string>

namespace reptok {

// ---------------------------------------------------------------------------------------------------------------
// Handles. JavaScript holds tensors and generators as Napi::External boxes. The magic word lets every entry point
// reject an object of the wrong kind with a clear error instead of reinterpreting memory.
// ---------------------------------------------------------------------------------------------------------------

constexpr uint32_t kTensorMagic = 0x54454e53;     // "TENS"
constexpr uint32_t kGeneratorMagic = 0x47454e52;  // "GENR"

struct TensorBox {
  uint32_t magic = kTensorMagic;
  at::Tensor t;            // undefined after dispose()
  int64_t accounted = 0;   // bytes reported to V8 as external memory for this handle
};

struct GeneratorBox {
  uint32_t magic = kGeneratorMagic;
  at::Generator g;
};

// A JS handle for `t` (an undefined tensor becomes null). Reports the tensor's storage to V8 as external memory
// when this handle is its only owner, so that forgotten tensors still put pressure on the garbage collector.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
Napi::Value wrapGenerator(Napi::Env env, at::Generator g);

// The box behind a JS value, or nullptr when it is not a tensor handle.
TensorBox* tensorBox(const Napi::Value& v);
// The tensor behind a handle; throws a JS TypeError naming `what` for anything else, and for disposed tensors.
const at::Tensor& unwrapTensor(const Napi::Value& v, const std::string& what);
at::Generator unwrapGenerator(const Napi::Value& v, const std::string& what);

// Releases the tensor held by a box now (dispose()); the box itself dies with its JS handle.
void releaseBox(Napi::Env env, TensorBox* box);

// Counters for leak tests: handles whose tensor is still alive, and bytes reported to V8.
int64_t liveTensorCount();
int64_t accountedBytes();

// ---------------------------------------------------------------------------------------------------------------
// Descriptions used in error messages: "float32[2, 3]" (+ " cuda:0" off the CPU).
// ---------------------------------------------------------------------------------------------------------------

const char* dtypeName(at::ScalarType t);
std::string describe(const at::Tensor& t);
std::string describeValue(const Napi::Value& v);

// ---------------------------------------------------------------------------------------------------------------
// Errors. Every exported function runs its body through `guard`, which turns c10/std exceptions into JS Errors
// prefixed with `context()` (built lazily: only on failure). Nothing a caller passes may abort the process.
// ---------------------------------------------------------------------------------------------------------------

[[noreturn]] void rethrowAsJs(Napi::Env env, const std::string& context);

template <typename Body, typename Context>
Napi::Value guard(Napi::Env env, Body&& body, Context&& context) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    rethrowAsJs(env, context());
  }
}

// Registers an exported function whose body can never let a C++ exception escape into N-API (which would abort
// the process): anything not already a JS error becomes one, prefixed with the function's name.
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
template <NativeFn F>
void exportFn(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(
                        env,
                        [name](const Napi::CallbackInfo& info) -> Napi::Value {
                          try {
                            return F(info);
                          } catch (const Napi::Error&) {
                            throw;
                          } catch (...) {
                            rethrowAsJs(info.Env(), name);
                          }
                        },
                        name));
}

// Argument helpers for the small entry points.
int64_t toInt(const Napi::Value& v, const std::string& what);
double toDouble(const Napi::Value& v, const std::string& what);
bool toBool(const Napi::Value& v, const std::string& what);
std::vector<int64_t> toIntVector(const Napi::Value& v, const std::string& what);
std::vector<at::Tensor> toTensorVector(const Napi::Value& v, const std::string& what);
Napi::Array shapeArray(Napi::Env env, at::IntArrayRef sizes);

// Registration hooks, one per source file.
void initTensors(Napi::Env env, Napi::Object exports);
void initDispatch(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initRandom(Napi::Env env, Napi::Object exports);
void initOptim(Napi::Env env, Napi::Object exports);
void initRuntime(Napi::Env env, Napi::Object exports);
void initProfiler(Napi::Env env, Napi::Object exports);
void initLinear(Napi::Env env, Napi::Object exports);
void initAttention(Napi::Env env, Napi::Object exports);
void initDistributed(Napi::Env env, Napi::Object exports);

// For the backward of reptok:: operators (native/kernels/, defined in library.cc): they are first-order only.
void refuseDoubleBackward(const char* op);

}  // namespace reptok
