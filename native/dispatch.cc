// Generic operator calls through the c10 dispatcher.
//
// Instead of one hand-written binding per ATen function, JavaScript looks an operator up once by its schema name
// ("aten::add", overload "Tensor") and then calls it with plain JS values, which are converted to IValues by the
// argument types of the schema. The call goes through the full dispatcher (autograd, device kernels), so every op
// that libtorch has works on every device libtorch supports, and gradients flow through it.
#include "common.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ScalarOps.h>
#include <torch/version.h>

#include <memory>
#include <sstream>

namespace reptok {

enum class Kind : uint8_t { Tensor, TensorList, OptTensorList, Int, IntList, Float, FloatList, Bool, BoolList, Scalar, Str, Device, Generator, Unsupported };

struct ArgSpec {
  std::string name;
  Kind kind;
  bool optional;
  c10::optional<c10::IValue> def;
};

struct OpEntry {
  c10::OperatorHandle op;
  std::string name;  // "aten::add.Tensor"
  std::vector<ArgSpec> args;
  explicit OpEntry(c10::OperatorHandle h) : op(std::move(h)) {}
};

static std::vector<std::unique_ptr<OpEntry>> g_ops;

// ---------------------------------------------------------------------------------------------------------------
// Schema classification
// ---------------------------------------------------------------------------------------------------------------

static Kind classify(const c10::TypePtr& t, bool& optional) {
  if (t->kind() == c10::TypeKind::OptionalType) {
    optional = true;
    return classify(t->expectRef<c10::OptionalType>().getElementType(), optional);
  }
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:      // also ScalarType, Layout, MemoryFormat: their schema ("fake") type is int
    case c10::TypeKind::SymIntType: return Kind::Int;
    case c10::TypeKind::FloatType: return Kind::Float;
    case c10::TypeKind::BoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::Str;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      const auto& elem = t->expectRef<c10::ListType>().getElementType();
      switch (elem->kind()) {
        case c10::TypeKind::TensorType: return Kind::TensorList;
        case c10::TypeKind::OptionalType:
          return elem->expectRef<c10::OptionalType>().getElementType()->kind() == c10::TypeKind::TensorType ? Kind::OptTensorList : Kind::Unsupported;
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType: return Kind::IntList;
        case c10::TypeKind::FloatType: return Kind::FloatList;
        case c10::TypeKind::BoolType: return Kind::BoolList;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

static Napi::Value findOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "findOp(name, overload): expected two strings");
  std::string name = info[0].As<Napi::String>();
  std::string overload = info[1].As<Napi::String>();
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) {
    throw Napi::Error::New(env, "operator " + name + (overload.empty() ? "" : "." + overload) + " does not exist in this libtorch (" +
                                    std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + ")");
  }
  auto entry = std::make_unique<OpEntry>(*handle);
  entry->name = overload.empty() ? name : name + "." + overload;
  for (const auto& a : handle->schema().arguments()) {
    bool optional = false;
    Kind k = classify(a.type(), optional);
    entry->args.push_back({a.name(), k, optional, a.default_value()});
  }
  g_ops.push_back(std::move(entry));
  return Napi::Number::New(env, static_cast<double>(g_ops.size() - 1));
}

// ---------------------------------------------------------------------------------------------------------------
// JS value -> IValue
// ---------------------------------------------------------------------------------------------------------------

[[noreturn]] static void argError(const Napi::Value& v, const OpEntry& e, const ArgSpec& a, const char* expected) {
  throw Napi::TypeError::New(v.Env(), e.name + ": argument '" + a.name + "' expects " + expected + ", got " + describeValue(v));
}

static c10::Scalar toScalar(const Napi::Value& v, const OpEntry& e, const ArgSpec& a) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    // JS has one number type: integral values travel as ints (like Python's `1`), others as doubles (`0.5`).
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) return c10::Scalar(static_cast<int64_t>(d));
    return c10::Scalar(d);
  }
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) {
    bool lossless = false;
    return c10::Scalar(v.As<Napi::BigInt>().Int64Value(&lossless));
  }
  argError(v, e, a, "a number");
}

static c10::IValue toIValue(const Napi::Value& v, const OpEntry& e, const ArgSpec& a) {
  if (v.IsNull() || v.IsUndefined()) {
    if (a.optional) return c10::IValue();
    argError(v, e, a, "a value");
  }
  switch (a.kind) {
    case Kind::Tensor: {
      if (TensorBox* box = tensorBox(v)) {
        if (!box->t.defined()) throw Napi::Error::New(v.Env(), e.name + ": argument '" + a.name + "': tensor was used after dispose()");
        return box->t;
      }
      if (v.IsNumber() || v.IsBoolean()) {
        // Python semantics: a number where a tensor is expected becomes a "wrapped number", which does not take
        // part in dtype promotion beyond its category (float32 tensor + 0.5 stays float32).
        at::Tensor t = c10::scalar_to_tensor(toScalar(v, e, a));
        t.unsafeGetTensorImpl()->set_wrapped_number(true);
        return t;
      }
      argError(v, e, a, "a Tensor");
    }
    case Kind::Int: {
      if (v.IsNumber() || v.IsBigInt() || v.IsBoolean()) {
        try { return toInt(v, a.name); } catch (const Napi::Error&) {}
      }
      argError(v, e, a, "an integer");
    }
    case Kind::Float:
      if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
      argError(v, e, a, "a number");
    case Kind::Bool:
      if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
      argError(v, e, a, "a boolean");
    case Kind::Scalar:
      return toScalar(v, e, a);
    case Kind::Str:
      if (v.IsString()) return std::string(v.As<Napi::String>());
      argError(v, e, a, "a string");
    case Kind::Device:
      if (v.IsString()) return c10::Device(std::string(v.As<Napi::String>()));
      argError(v, e, a, "a device string such as 'cpu' or 'cuda:0'");
    case Kind::Generator:
      return unwrapGenerator(v, e.name + ": argument '" + a.name + "'");
    case Kind::IntList: {
      if (v.IsNumber() || v.IsBigInt()) return c10::List<int64_t>({toInt(v, a.name)});
      if (!v.IsArray()) argError(v, e, a, "an array of integers");
      auto arr = v.As<Napi::Array>();
      c10::List<int64_t> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value x = arr.Get(i);
        if (!(x.IsNumber() || x.IsBigInt())) argError(v, e, a, "an array of integers");
        try { out.push_back(toInt(x, a.name)); } catch (const Napi::Error&) { argError(v, e, a, "an array of integers"); }
      }
      return out;
    }
    case Kind::FloatList: {
      if (v.IsNumber()) return c10::List<double>({v.As<Napi::Number>().DoubleValue()});
      if (!v.IsArray()) argError(v, e, a, "an array of numbers");
      auto arr = v.As<Napi::Array>();
      c10::List<double> out;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value x = arr.Get(i);
        if (!x.IsNumber()) argError(v, e, a, "an array of numbers");
        out.push_back(x.As<Napi::Number>().DoubleValue());
      }
      return out;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) argError(v, e, a, "an array of booleans");
      auto arr = v.As<Napi::Array>();
      // bool[N] arguments are std::array<bool, N> in C++; the boxed kernel reads them from a list of bools.
      c10::List<bool> out;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value x = arr.Get(i);
        if (!x.IsBoolean()) argError(v, e, a, "an array of booleans");
        out.push_back(x.As<Napi::Boolean>().Value());
      }
      return out;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) argError(v, e, a, "an array of tensors");
      auto arr = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); i++) {
        TensorBox* box = tensorBox(arr.Get(i));
        if (!box) argError(v, e, a, "an array of tensors");
        if (!box->t.defined()) throw Napi::Error::New(v.Env(), e.name + ": argument '" + a.name + "[" + std::to_string(i) + "]': tensor was used after dispose()");
        out.push_back(box->t);
      }
      return out;
    }
    case Kind::OptTensorList: {
      if (!v.IsArray()) argError(v, e, a, "an array of tensors or nulls");
      auto arr = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value x = arr.Get(i);
        if (x.IsNull() || x.IsUndefined()) { out.push_back(c10::nullopt); continue; }
        TensorBox* box = tensorBox(x);
        if (!box || !box->t.defined()) argError(v, e, a, "an array of live tensors or nulls");
        out.push_back(box->t);
      }
      return out;
    }
    case Kind::Unsupported:
      break;
  }
  argError(v, e, a, "a type this binding does not convert");
}

// ---------------------------------------------------------------------------------------------------------------
// IValue -> JS value
// ---------------------------------------------------------------------------------------------------------------

static Napi::Value toJs(Napi::Env env, c10::IValue v) {
  if (v.isTensor()) return wrapTensor(env, std::move(v).toTensor());
  if (v.isNone()) return env.Null();
  if (v.isTensorList()) {
    auto list = std::move(v).toTensorList();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), wrapTensor(env, list.get(i)));
    return arr;
  }
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isIntList()) {
    auto list = v.toIntVector();
    return shapeArray(env, list);
  }
  if (v.isTuple()) {
    auto elems = v.toTupleRef().elements();
    auto arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) arr.Set(static_cast<uint32_t>(i), toJs(env, elems[i]));
    return arr;
  }
  throw Napi::Error::New(env, std::string("operator returned a value of unsupported kind ") + v.tagKind());
}

// ---------------------------------------------------------------------------------------------------------------
// call(opId, ...args) -> result | [results]      callVoid(opId, ...args) -> undefined (in-place ops)
// ---------------------------------------------------------------------------------------------------------------

static std::string callContext(const OpEntry& e, const Napi::CallbackInfo& info) {
  std::ostringstream s;
  s << e.name << "(";
  for (size_t i = 1; i < info.Length(); i++) {
    if (i > 1) s << ", ";
    if (i - 1 < e.args.size()) s << e.args[i - 1].name << "=";
    s << describeValue(info[i]);
  }
  s << ")";
  return s.str();
}

static Napi::Value invoke(const Napi::CallbackInfo& info, bool wantResult) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "call: the first argument must be an operator id from findOp()");
  auto id = info[0].As<Napi::Number>().Int64Value();
  if (id < 0 || static_cast<size_t>(id) >= g_ops.size()) throw Napi::RangeError::New(env, "call: unknown operator id");
  const OpEntry& e = *g_ops[id];
  size_t given = info.Length() - 1;
  if (given > e.args.size()) {
    throw Napi::TypeError::New(env, e.name + ": takes " + std::to_string(e.args.size()) + " arguments, got " + std::to_string(given));
  }
  std::vector<c10::IValue> stack;
  stack.reserve(e.args.size());
  return guard(
      env,
      [&]() -> Napi::Value {
        for (size_t i = 0; i < e.args.size(); i++) {
          const ArgSpec& a = e.args[i];
          Napi::Value v = i < given ? info[i + 1] : env.Undefined();
          if (v.IsUndefined() && a.def) {
            stack.push_back(*a.def);
            continue;
          }
          if (v.IsUndefined() && !a.optional) {
            throw Napi::TypeError::New(env, e.name + ": missing argument '" + a.name + "'");
          }
          stack.push_back(toIValue(v, e, a));
        }
        e.op.callBoxed(&stack);
        if (!wantResult) return env.Undefined();
        if (stack.size() == 1) return toJs(env, std::move(stack[0]));
        auto arr = Napi::Array::New(env, stack.size());
        for (size_t i = 0; i < stack.size(); i++) arr.Set(static_cast<uint32_t>(i), toJs(env, std::move(stack[i])));
        return arr;
      },
      [&]() { return callContext(e, info); });
}

static Napi::Value call(const Napi::CallbackInfo& info) { return invoke(info, true); }
static Napi::Value callVoid(const Napi::CallbackInfo& info) { return invoke(info, false); }

static Napi::Value opSchema(const Napi::CallbackInfo& info) {
  auto id = toInt(info[0], "opSchema");
  if (id < 0 || static_cast<size_t>(id) >= g_ops.size()) throw Napi::RangeError::New(info.Env(), "opSchema: unknown operator id");
  std::ostringstream s;
  s << g_ops[id]->op.schema();
  return Napi::String::New(info.Env(), s.str());
}

void initDispatch(Napi::Env env, Napi::Object exports) {
  exportFn<findOp>(env, exports, "findOp");
  exportFn<call>(env, exports, "call");
  exportFn<callVoid>(env, exports, "callVoid");
  exportFn<opSchema>(env, exports, "opSchema");
}

}  // namespace reptok
