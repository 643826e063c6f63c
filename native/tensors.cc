// Tensor metadata, disposal, and the copies between JavaScript memory, files and tensors.
#include "common.h"

#include <torch/csrc/autograd/function.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace reptok {

static Napi::Value dispose(const Napi::CallbackInfo& info) {
  if (TensorBox* box = tensorBox(info[0])) releaseBox(info.Env(), box);
  return info.Env().Undefined();
}

static Napi::Value isDisposed(const Napi::CallbackInfo& info) {
  TensorBox* box = tensorBox(info[0]);
  return Napi::Boolean::New(info.Env(), !box || !box->t.defined());
}

static Napi::Value shape(const Napi::CallbackInfo& info) {
  return shapeArray(info.Env(), unwrapTensor(info[0], "shape").sizes());
}

static Napi::Value strides(const Napi::CallbackInfo& info) {
  return shapeArray(info.Env(), unwrapTensor(info[0], "strides").strides());
}

static Napi::Value dtype(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(unwrapTensor(info[0], "dtype").scalar_type()));
}

static Napi::Value device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), unwrapTensor(info[0], "device").device().str());
}

static Napi::Value requiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "requiresGrad").requires_grad());
}

static Napi::Value isContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "isContiguous").is_contiguous());
}

static Napi::Value isLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), unwrapTensor(info[0], "isLeaf").is_leaf());
}

static Napi::Value gradFnName(const Napi::CallbackInfo& info) {
  const at::Tensor& t = unwrapTensor(info[0], "gradFn");
  auto fn = t.grad_fn();
  if (!fn) return info.Env().Null();
  return Napi::String::New(info.Env(), fn->name());
}

static Napi::Value describeTensor(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), describeValue(info[0]));
}

// Both tensors share memory (views, in-place results); used by tests and by the module system's aliasing checks.
static Napi::Value sameStorage(const Napi::CallbackInfo& info) {
  const at::Tensor& a = unwrapTensor(info[0], "sameStorage");
  const at::Tensor& b = unwrapTensor(info[1], "sameStorage");
  return Napi::Boolean::New(info.Env(), a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage()));
}

// ---------------------------------------------------------------------------------------------------------------
// Copies
// ---------------------------------------------------------------------------------------------------------------

static at::ScalarType toScalarType(const Napi::Value& v, const std::string& what) {
  int64_t code = toInt(v, what);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) throw Napi::RangeError::New(v.Env(), what + ": unknown dtype code");
  return static_cast<at::ScalarType>(code);
}

// fromBytes(view: ArrayBufferView, dtype, shape, device?) -> tensor holding a copy of the bytes.
static Napi::Value fromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() && !info[0].IsDataView() && !info[0].IsBuffer()) throw Napi::TypeError::New(env, "fromBytes: expected a TypedArray or Buffer");
  auto view = info[0].As<Napi::TypedArray>();
  auto bytes = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  size_t nbytes = view.ByteLength();
  at::ScalarType st = toScalarType(info[1], "fromBytes dtype");
  std::vector<int64_t> sizes = toIntVector(info[2], "fromBytes shape");
  return guard(
      env,
      [&]() -> Napi::Value {
        int64_t numel = 1;
        for (auto s : sizes) {
          if (s < 0) throw std::invalid_argument("negative dimension in shape");
          numel *= s;
        }
        size_t need = static_cast<size_t>(numel) * c10::elementSize(st);
        if (need != nbytes) {
          throw std::invalid_argument("shape holds " + std::to_string(numel) + " elements (" + std::to_string(need) + " bytes) but the data has " +
                                      std::to_string(nbytes) + " bytes");
        }
        at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(st));
        if (nbytes) std::memcpy(t.data_ptr(), bytes, nbytes);
        if (info.Length() > 3 && info[3].IsString()) {
          c10::Device dev(std::string(info[3].As<Napi::String>()));
          if (!dev.is_cpu()) t = t.to(dev);
        }
        return wrapTensor(env, std::move(t));
      },
      [&]() { return std::string("fromBytes(") + dtypeName(st) + ")"; });
}

// toBytes(t) -> Buffer with a copy of the tensor's elements in row-major order (moved to the CPU if needed).
static Napi::Value toBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "toBytes");
  return guard(
      env,
      [&]() -> Napi::Value {
        at::Tensor c = t.detach().to(at::kCPU).contiguous();
        size_t n = c.numel() * c.element_size();
        auto buf = Napi::Buffer<uint8_t>::New(env, n);
        if (n) std::memcpy(buf.Data(), c.data_ptr(), n);
        return buf;
      },
      [&]() { return "toBytes(" + describe(t) + ")"; });
}

static Napi::Value item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "item");
  return guard(
      env,
      [&]() -> Napi::Value {
        c10::Scalar s = t.item();
        if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
        if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
        return Napi::Number::New(env, s.toDouble());
      },
      [&]() { return "item(" + describe(t) + ")"; });
}

// readInto(t, fd, position): fill a contiguous CPU tensor with bytes read from a file descriptor, without a
// JavaScript-side copy. Used by the safetensors reader so a large file is read straight into tensor memory.
static Napi::Value readInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "readInto");
  int fd = static_cast<int>(toInt(info[1], "readInto fd"));
  int64_t pos = toInt(info[2], "readInto position");
  if (!t.device().is_cpu() || !t.is_contiguous()) throw Napi::Error::New(env, "readInto: the tensor must be a contiguous CPU tensor");
  auto* dst = static_cast<uint8_t*>(t.data_ptr());
  size_t left = t.numel() * t.element_size();
  while (left > 0) {
    ssize_t got = pread(fd, dst, left, pos);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Napi::Error::New(env, std::string("readInto: read failed: ") + std::strerror(errno));
    if (got == 0) throw Napi::Error::New(env, "readInto: unexpected end of file (" + std::to_string(left) + " bytes missing)");
    dst += got;
    left -= static_cast<size_t>(got);
    pos += got;
  }
  t.unsafeGetTensorImpl()->bump_version();  // new contents, as an in-place op would mark them
  return env.Undefined();
}

// writeFrom(t, fd, position) -> bytes written: the tensor's elements (row-major, moved to the CPU if needed).
static Napi::Value writeFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = unwrapTensor(info[0], "writeFrom");
  int fd = static_cast<int>(toInt(info[1], "writeFrom fd"));
  int64_t pos = toInt(info[2], "writeFrom position");
  at::Tensor c;
  try {
    c = t.detach().to(at::kCPU).contiguous();
  } catch (...) {
    rethrowAsJs(env, "writeFrom(" + describe(t) + ")");
  }
  auto* src = static_cast<const uint8_t*>(c.data_ptr());
  size_t total = c.numel() * c.element_size(), left = total;
  while (left > 0) {
    ssize_t put = pwrite(fd, src, left, pos);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw Napi::Error::New(env, std::string("writeFrom: write failed: ") + std::strerror(errno));
    src += put;
    left -= static_cast<size_t>(put);
    pos += put;
  }
  return Napi::Number::New(env, static_cast<double>(total));
}

static Napi::Value liveTensors(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("count", Napi::Number::New(info.Env(), static_cast<double>(liveTensorCount())));
  o.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(accountedBytes())));
  return o;
}

void initTensors(Napi::Env env, Napi::Object exports) {
  exportFn<dispose>(env, exports, "dispose");
  exportFn<isDisposed>(env, exports, "isDisposed");
  exportFn<shape>(env, exports, "shape");
  exportFn<strides>(env, exports, "strides");
  exportFn<dtype>(env, exports, "dtype");
  exportFn<device>(env, exports, "device");
  exportFn<requiresGrad>(env, exports, "requiresGrad");
  exportFn<isContiguous>(env, exports, "isContiguous");
  exportFn<isLeaf>(env, exports, "isLeaf");
  exportFn<gradFnName>(env, exports, "gradFnName");
  exportFn<describeTensor>(env, exports, "describe");
  exportFn<sameStorage>(env, exports, "sameStorage");
  exportFn<fromBytes>(env, exports, "fromBytes");
  exportFn<toBytes>(env, exports, "toBytes");
  exportFn<item>(env, exports, "item");
  exportFn<readInto>(env, exports, "readInto");
  exportFn<writeFrom>(env, exports, "writeFrom");
  exportFn<liveTensors>(env, exports, "liveTensors");
}

}  // namespace reptok
