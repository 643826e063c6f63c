// Tensor and generator handles, external-memory accounting, descriptions and error translation.
#include "common.h"

#include <atomic>
#include <cmath>
#include <sstream>

namespace reptok {

// ---------------------------------------------------------------------------------------------------------------
// Accounting and finalizers. The addon is built with NAPI_EXPERIMENTAL so that these finalizers are "basic": Node
// runs them during garbage collection itself. Ordinary finalizers are deferred to the event loop, so a synchronous
// training loop (which never yields) would pile up handles until it ends.
// ---------------------------------------------------------------------------------------------------------------

static std::atomic<int64_t> g_live{0};
static std::atomic<int64_t> g_accounted{0};

int64_t liveTensorCount() { return g_live.load(); }
int64_t accountedBytes() { return g_accounted.load(); }

static void adjust(node_api_basic_env env, int64_t delta) {
  if (delta == 0) return;
  int64_t total = 0;
  napi_adjust_external_memory(env, delta, &total);
}

// Only a handle that is the sole owner of a storage reports it: views and aliases (in-place results) share the
// storage of a tensor that already did, and counting them again would make the collector run needlessly often.
static int64_t ownedBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  const auto& storage = t.storage();
  if (storage.use_count() != 1) return 0;
  return static_cast<int64_t>(storage.nbytes());
}

static void finalizeTensor(node_api_basic_env env, void* data, void*) {
  auto* box = static_cast<TensorBox*>(data);
  if (box->t.defined()) {
    g_live--;
    g_accounted -= box->accounted;
    adjust(env, -box->accounted);
  }
  delete box;
}

static void finalizeGenerator(node_api_basic_env, void* data, void*) { delete static_cast<GeneratorBox*>(data); }

static Napi::Value external(Napi::Env env, void* data, node_api_basic_finalize fin) {
  napi_value v;
  NAPI_THROW_IF_FAILED(env, napi_create_external(env, data, fin, nullptr, &v), Napi::Value());
  return Napi::Value(env, v);
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* box = new TensorBox();
  box->accounted = ownedBytes(t);
  box->t = std::move(t);
  g_live++;
  g_accounted += box->accounted;
  adjust(env, box->accounted);
  return external(env, box, finalizeTensor);
}

void releaseBox(Napi::Env env, TensorBox* box) {
  if (!box->t.defined()) return;
  box->t.reset();
  g_live--;
  g_accounted -= box->accounted;
  adjust(env, -box->accounted);
  box->accounted = 0;
}

Napi::Value wrapGenerator(Napi::Env env, at::Generator g) {
  auto* box = new GeneratorBox();
  box->g = std::move(g);
  return external(env, box, finalizeGenerator);
}

TensorBox* tensorBox(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  auto* box = v.As<Napi::External<TensorBox>>().Data();
  return (box && box->magic == kTensorMagic) ? box : nullptr;
}

const at::Tensor& unwrapTensor(const Napi::Value& v, const std::string& what) {
  TensorBox* box = tensorBox(v);
  if (!box) throw Napi::TypeError::New(v.Env(), what + ": expected a Tensor, got " + describeValue(v));
  if (!box->t.defined()) throw Napi::Error::New(v.Env(), what + ": tensor was used after dispose()");
  return box->t;
}

at::Generator unwrapGenerator(const Napi::Value& v, const std::string& what) {
  if (v.IsExternal()) {
    auto* box = v.As<Napi::External<GeneratorBox>>().Data();
    if (box && box->magic == kGeneratorMagic) return box->g;
  }
  throw Napi::TypeError::New(v.Env(), what + ": expected a Generator, got " + describeValue(v));
}

// ---------------------------------------------------------------------------------------------------------------
// Descriptions
// ---------------------------------------------------------------------------------------------------------------

const char* dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined tensor";
  std::ostringstream s;
  s << dtypeName(t.scalar_type()) << "[";
  for (int64_t i = 0; i < t.dim(); i++) s << (i ? ", " : "") << t.size(i);
  s << "]";
  if (!t.device().is_cpu()) s << " " << t.device().str();
  return s.str();
}

std::string describeValue(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (TensorBox* box = tensorBox(v)) return box->t.defined() ? describe(box->t) : "disposed tensor";
  if (v.IsExternal()) return "Generator";
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBigInt()) return "bigint";
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    std::string s = "[";
    uint32_t n = a.Length();
    for (uint32_t i = 0; i < n && i < 8; i++) s += (i ? ", " : "") + describeValue(a.Get(i));
    if (n > 8) s += ", ...";
    return s + "]";
  }
  if (v.IsFunction()) return "function";
  return "object";
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

// c10 messages can end with the C++ source location; keep the sentence a user can act on.
static std::string firstParagraph(std::string msg) {
  auto cut = msg.find("\nException raised from");
  if (cut != std::string::npos) msg.resize(cut);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

void rethrowAsJs(Napi::Env env, const std::string& context) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::IndexError& e) {
    throw Napi::RangeError::New(env, context + ": " + firstParagraph(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, context + ": " + firstParagraph(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, context + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, context + ": unknown native error");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Argument helpers
// ---------------------------------------------------------------------------------------------------------------

int64_t toInt(const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) return static_cast<int64_t>(d);
  } else if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (lossless) return r;
  } else if (v.IsBoolean()) {
    return v.As<Napi::Boolean>().Value() ? 1 : 0;
  }
  throw Napi::TypeError::New(v.Env(), what + ": expected an integer, got " + describeValue(v));
}

double toDouble(const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  if (v.IsBigInt()) {
    bool lossless = false;
    return static_cast<double>(v.As<Napi::BigInt>().Int64Value(&lossless));
  }
  throw Napi::TypeError::New(v.Env(), what + ": expected a number, got " + describeValue(v));
}

bool toBool(const Napi::Value& v, const std::string& what) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  throw Napi::TypeError::New(v.Env(), what + ": expected a boolean, got " + describeValue(v));
}

std::vector<int64_t> toIntVector(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) {
    if (v.IsNumber() || v.IsBigInt()) return {toInt(v, what)};
    throw Napi::TypeError::New(v.Env(), what + ": expected an array of integers, got " + describeValue(v));
  }
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = toInt(a.Get(i), what);
  return out;
}

std::vector<at::Tensor> toTensorVector(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), what + ": expected an array of tensors, got " + describeValue(v));
  auto a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(unwrapTensor(a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

Napi::Array shapeArray(Napi::Env env, at::IntArrayRef sizes) {
  auto a = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return a;
}

}  // namespace reptok
