// Optimizer steps over whole parameter lists in one native call (no per-parameter JS round trips). The arithmetic
// follows torch.optim (single-tensor path of PyTorch 1.13) operation by operation, so results match PyTorch.
#include "common.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace reptok {

static double numberField(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  return toDouble(v, std::string("optimizer option ") + key);
}

static bool boolField(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

static void checkSameLength(Napi::Env env, const char* name, size_t a, size_t b) {
  if (a != b) throw Napi::Error::New(env, std::string(name) + ": every state list must have one entry per parameter");
}

// One pass over memory for a float32 CPU parameter: the same arithmetic as the op sequence below (decay, both
// moments, bias-corrected step), but reading p, g, m, v once and writing p, m, v once instead of ~10 full passes
// (the update of a large model is memory-bound: 300M parameters move 30 GB unfused, 8 GB fused).
static bool fusable(const at::Tensor& p, const at::Tensor& g, const at::Tensor& m, const at::Tensor& v) {
  for (const at::Tensor* t : {&p, &g, &m, &v}) {
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || !t->is_contiguous()) return false;
  }
  return g.numel() == p.numel() && m.numel() == p.numel() && v.numel() == p.numel();
}

struct AdamWConsts {
  float decay, beta1, beta2, oneMinusB1, oneMinusB2, bc2Sqrt, eps, negStepSize;
  bool maximize;
};

// The rounding follows ATen's kernels op by op, bit for bit (test/optim/optim-parity.test.ts): add_(g, alpha) is a
// fused multiply-add; addcmul_ computes self + value·t1·t2, which the compiler contracts into fma(value·t1, t2, self)
// in ATen's AVX2 kernels; addcdiv_ computes self + value·t1 / t2. Without AVX2+FMA, ATen's baseline kernels round
// every operation, and so does the plain loop (built with -ffp-contract=off so the compiler adds no FMAs itself).
template <bool kFma>
__attribute__((always_inline)) inline void adamwLoop(float* P, const float* G, float* M, float* V, int64_t begin, int64_t end, const AdamWConsts& c) {
  for (int64_t i = begin; i < end; i++) {
    const float g = c.maximize ? -G[i] : G[i];
    const float mi = kFma ? __builtin_fmaf(g, c.oneMinusB1, M[i] * c.beta1) : M[i] * c.beta1 + g * c.oneMinusB1;
    const float vi = kFma ? __builtin_fmaf(c.oneMinusB2 * g, g, V[i] * c.beta2) : V[i] * c.beta2 + c.oneMinusB2 * g * g;
    M[i] = mi;
    V[i] = vi;
    P[i] = P[i] * c.decay + c.negStepSize * mi / (std::sqrt(vi) / c.bc2Sqrt + c.eps);
  }
}

__attribute__((target("avx2,fma"))) static void adamwLoopFma(float* P, const float* G, float* M, float* V, int64_t b, int64_t e, const AdamWConsts& c) {
  adamwLoop<true>(P, G, M, V, b, e, c);
}
static void adamwLoopPlain(float* P, const float* G, float* M, float* V, int64_t b, int64_t e, const AdamWConsts& c) {
  adamwLoop<false>(P, G, M, V, b, e, c);
}

static void adamwFused(at::Tensor& p, const at::Tensor& grad, at::Tensor& m, at::Tensor& v, const AdamWConsts& c) {
  static const bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  float* P = p.data_ptr<float>();
  const float* G = grad.data_ptr<float>();
  float* M = m.data_ptr<float>();
  float* V = v.data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    (fma ? adamwLoopFma : adamwLoopPlain)(P, G, M, V, begin, end, c);
  });
}

// adamwStep(params[], expAvg[], expAvgSq[], maxExpAvgSq[]|null, {lr, beta1, beta2, eps, weightDecay, step, amsgrad, maximize})
// `step` is the step number after this update (1 on the first call). Parameters without a gradient are skipped.
static Napi::Value adamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = toTensorVector(info[0], "adamw params");
  auto expAvg = toTensorVector(info[1], "adamw expAvg");
  auto expAvgSq = toTensorVector(info[2], "adamw expAvgSq");
  std::vector<at::Tensor> maxSq;
  if (info[3].IsArray()) maxSq = toTensorVector(info[3], "adamw maxExpAvgSq");
  if (!info[4].IsObject()) throw Napi::TypeError::New(env, "adamw: options object expected");
  auto o = info[4].As<Napi::Object>();
  double lr = numberField(o, "lr", 1e-3), beta1 = numberField(o, "beta1", 0.9), beta2 = numberField(o, "beta2", 0.999);
  double eps = numberField(o, "eps", 1e-8), wd = numberField(o, "weightDecay", 1e-2), step = numberField(o, "step", 1);
  bool amsgrad = boolField(o, "amsgrad"), maximize = boolField(o, "maximize");
  checkSameLength(env, "adamw", params.size(), expAvg.size());
  checkSameLength(env, "adamw", params.size(), expAvgSq.size());
  if (amsgrad) checkSameLength(env, "adamw (amsgrad)", params.size(), maxSq.size());
  size_t current = 0;
  return guard(
      env,
      [&]() -> Napi::Value {
        at::NoGradGuard noGrad;
        const double bc1 = 1 - std::pow(beta1, step);
        const double bc2 = 1 - std::pow(beta2, step);
        const double stepSize = lr / bc1;
        const double bc2Sqrt = std::sqrt(bc2);
        for (current = 0; current < params.size(); current++) {
          at::Tensor& p = params[current];
          const at::Tensor& g0 = p.grad();
          if (!g0.defined()) continue;
          if (!amsgrad && fusable(p, g0, expAvg[current], expAvgSq[current])) {
            const AdamWConsts c{static_cast<float>(1 - lr * wd), static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(1 - beta1),
                                static_cast<float>(1 - beta2), static_cast<float>(bc2Sqrt), static_cast<float>(eps), static_cast<float>(-stepSize), maximize};
            adamwFused(p, g0, expAvg[current], expAvgSq[current], c);
            // written through raw pointers: bump the version as ATen's in-place ops do, so what is derived from the
            // parameter's value (the bf16 weight copies of native/kernels/linear.cc) sees that it changed
            p.unsafeGetTensorImpl()->bump_version();
            continue;
          }
          at::Tensor g = maximize ? -g0 : g0;
          p.mul_(1 - lr * wd);
          expAvg[current].mul_(beta1).add_(g, 1 - beta1);
          expAvgSq[current].mul_(beta2).addcmul_(g, g, 1 - beta2);
          at::Tensor denom;
          if (amsgrad) {
            at::maximum_out(maxSq[current], maxSq[current], expAvgSq[current]);
            denom = (maxSq[current].sqrt() / bc2Sqrt).add_(eps);
          } else {
            denom = (expAvgSq[current].sqrt() / bc2Sqrt).add_(eps);
          }
          p.addcdiv_(expAvg[current], denom, -stepSize);
        }
        return env.Undefined();
      },
      [&]() { return "adamw step, parameter " + std::to_string(current) + " (" + (current < params.size() ? describe(params[current]) : "") + ")"; });
}

// sgdStep(params[], momentumBuffers[] (null entries are created), {lr, momentum, dampening, weightDecay, nesterov, maximize})
// -> the momentum buffers (new ones where null was passed).
static Napi::Value sgdStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = toTensorVector(info[0], "sgd params");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "sgd: momentum buffer list expected");
  auto bufArr = info[1].As<Napi::Array>();
  checkSameLength(env, "sgd", params.size(), bufArr.Length());
  std::vector<at::Tensor> bufs(params.size());
  for (uint32_t i = 0; i < bufArr.Length(); i++) {
    Napi::Value b = bufArr.Get(i);
    if (!b.IsNull() && !b.IsUndefined()) bufs[i] = unwrapTensor(b, "sgd momentum buffer");
  }
  auto o = info[2].As<Napi::Object>();
  double lr = numberField(o, "lr", 1e-2), momentum = numberField(o, "momentum", 0), dampening = numberField(o, "dampening", 0);
  double wd = numberField(o, "weightDecay", 0);
  bool nesterov = boolField(o, "nesterov"), maximize = boolField(o, "maximize");
  return guard(
      env,
      [&]() -> Napi::Value {
        at::NoGradGuard noGrad;
        auto out = Napi::Array::New(env, params.size());
        for (size_t i = 0; i < params.size(); i++) {
          at::Tensor& p = params[i];
          const at::Tensor& g0 = p.grad();
          if (g0.defined()) {
            at::Tensor d = maximize ? -g0 : g0;
            if (wd != 0) d = d.add(p, wd);
            if (momentum != 0) {
              if (!bufs[i].defined()) {
                bufs[i] = d.clone().detach();
              } else {
                bufs[i].mul_(momentum).add_(d, 1 - dampening);
              }
              d = nesterov ? d.add(bufs[i], momentum) : bufs[i];
            }
            p.add_(d, -lr);
          }
          out.Set(static_cast<uint32_t>(i), bufs[i].defined() ? wrapTensor(env, bufs[i]) : env.Null());
        }
        return out;
      },
      [&]() { return std::string("sgd step"); });
}

// clipGradNorm(params[], maxNorm, normType) -> total norm before clipping (torch.nn.utils.clip_grad_norm_).
static Napi::Value clipGradNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = toTensorVector(info[0], "clipGradNorm params");
  double maxNorm = toDouble(info[1], "clipGradNorm maxNorm");
  double normType = info[2].IsUndefined() ? 2.0 : toDouble(info[2], "clipGradNorm normType");
  return guard(
      env,
      [&]() -> Napi::Value {
        at::NoGradGuard noGrad;
        std::vector<at::Tensor> grads;
        for (auto& p : params)
          if (p.grad().defined()) grads.push_back(p.grad());
        if (grads.empty()) return Napi::Number::New(env, 0);
        at::Tensor total;
        if (std::isinf(normType)) {
          std::vector<at::Tensor> norms;
          for (auto& g : grads) norms.push_back(g.detach().abs().max());
          total = norms.size() == 1 ? norms[0] : at::stack(norms).max();
        } else {
          std::vector<at::Tensor> norms;
          for (auto& g : grads) norms.push_back(at::linalg_vector_norm(g.detach(), normType));
          total = at::linalg_vector_norm(at::stack(norms), normType);
        }
        // PyTorch computes `max_norm / (total + 1e-6)` as reciprocal() * max_norm; same here, bit for bit.
        at::Tensor coef = at::clamp_max((total + 1e-6).reciprocal() * maxNorm, 1.0);
        for (auto& g : grads) g.detach().mul_(coef.to(g.device()));
        return Napi::Number::New(env, total.item<double>());
      },
      [&]() { return std::string("clipGradNorm"); });
}

// emaUpdate(emaTensors[], tensors[], decay): ema = decay * ema + (1 - decay) * x, in place.
static Napi::Value emaUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ema = toTensorVector(info[0], "ema targets");
  auto src = toTensorVector(info[1], "ema sources");
  double decay = toDouble(info[2], "ema decay");
  checkSameLength(env, "emaUpdate", ema.size(), src.size());
  return guard(
      env,
      [&]() -> Napi::Value {
        at::NoGradGuard noGrad;
        for (size_t i = 0; i < ema.size(); i++) {
          if (at::isFloatingType(ema[i].scalar_type())) {
            ema[i].mul_(decay).add_(src[i].detach(), 1 - decay);
          } else {
            ema[i].copy_(src[i]);  // integer buffers (counters) are copied, not averaged
          }
        }
        return env.Undefined();
      },
      [&]() { return std::string("emaUpdate"); });
}

void initOptim(Napi::Env env, Napi::Object exports) {
  exportFn<adamwStep>(env, exports, "adamwStep");
  exportFn<sgdStep>(env, exports, "sgdStep");
  exportFn<clipGradNorm>(env, exports, "clipGradNorm");
  exportFn<emaUpdate>(env, exports, "emaUpdate");
}

}  // namespace reptok
