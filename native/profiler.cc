// A whole-step operator profiler: every ATen operator (forward, backward nodes, optimizer kernels) run between
// profilerStart() and profilerStop() is timed through libtorch's RecordFunction hooks and aggregated by name, with
// self time (inclusive time minus time spent in nested operators).
#include "common.h"

#include <ATen/record_function.h>

#include <chrono>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace reptok {

struct OpStats {
  int64_t calls = 0;
  double totalUs = 0;
  double selfUs = 0;
};

struct Frame : at::ObserverContext {
  std::chrono::steady_clock::time_point start;
  double childUs = 0;
  std::string key;  // computed at the start: inputs are only readable there
};

static std::mutex g_mutex;
static std::unordered_map<std::string, OpStats> g_stats;
static c10::optional<at::CallbackHandle> g_handle;
static bool g_withShapes = false;
static thread_local std::vector<Frame*> t_stack;

// "aten::mm[64x384, 384x1152]" when shapes are recorded
static std::string key(const at::RecordFunction& fn) {
  std::string k = fn.name();
  if (!g_withShapes) return k;
  k += "[";
  bool first = true;
  for (const auto& v : fn.inputs()) {
    if (!v.isTensor()) continue;
    const auto& t = v.toTensor();
    if (!first) k += ", ";
    first = false;
    if (!t.defined()) { k += "-"; continue; }
    for (int64_t i = 0; i < t.dim(); i++) k += (i ? "x" : "") + std::to_string(t.size(i));
    if (t.dim() > 1 && !t.is_contiguous()) k += "(strided)";
  }
  return k + "]";
}

static std::unique_ptr<at::ObserverContext> onStart(const at::RecordFunction& fn) {
  auto f = std::make_unique<Frame>();
  f->key = key(fn);
  f->start = std::chrono::steady_clock::now();
  t_stack.push_back(f.get());
  return f;
}

static void onEnd(const at::RecordFunction&, at::ObserverContext* ctx) {
  auto* f = static_cast<Frame*>(ctx);
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - f->start).count();
  if (!t_stack.empty() && t_stack.back() == f) t_stack.pop_back();
  if (!t_stack.empty()) t_stack.back()->childUs += us;
  std::lock_guard<std::mutex> lock(g_mutex);
  OpStats& s = g_stats[f->key];
  s.calls++;
  s.totalUs += us;
  s.selfUs += us - f->childUs;
}

static Napi::Value profilerStart(const Napi::CallbackInfo& info) {
  if (g_handle) throw Napi::Error::New(info.Env(), "profilerStart: the profiler is already running");
  g_withShapes = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_stats.clear();
  }
  g_handle = at::addGlobalCallback(at::RecordFunctionCallback(onStart, onEnd).needsInputs(g_withShapes).scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
  return info.Env().Undefined();
}

// profilerStop() -> [{name, calls, totalUs, selfUs}] sorted by self time
static Napi::Value profilerStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_handle) throw Napi::Error::New(env, "profilerStop: the profiler is not running");
  at::removeCallback(*g_handle);
  g_handle.reset();
  std::vector<std::pair<std::string, OpStats>> rows;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    rows.assign(g_stats.begin(), g_stats.end());
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.selfUs > b.second.selfUs; });
  auto arr = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    auto o = Napi::Object::New(env);
    o.Set("name", rows[i].first);
    o.Set("calls", Napi::Number::New(env, static_cast<double>(rows[i].second.calls)));
    o.Set("totalUs", Napi::Number::New(env, rows[i].second.totalUs));
    o.Set("selfUs", Napi::Number::New(env, rows[i].second.selfUs));
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

void initProfiler(Napi::Env env, Napi::Object exports) {
  exportFn<profilerStart>(env, exports, "profilerStart");
  exportFn<profilerStop>(env, exports, "profilerStop");
}

}  // namespace reptok
