// Distributed training on torch's c10d: process groups (gloo on the CPU; NCCL where libtorch was built with CUDA),
// rendezvous through a TCPStore (torchrun's MASTER_ADDR/MASTER_PORT) or a FileStore (single-host tests), the
// collectives the trainer needs, each with a timeout, and a gradient reducer in the manner of PyTorch's DDP: hooks
// on the parameters' gradient accumulators copy each gradient into its bucket as backward produces it, and a bucket
// whose gradients are all in is all-reduced on c10d's own threads while backward goes on with earlier layers.
// The gloo headers come from Debian's libgloo-dev (libtorch-dev's c10d headers include them).
//
// Nothing here calls JavaScript: the hooks run on libtorch's autograd thread, the collectives on c10d's.
#include "common.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#define USE_C10D_GLOO  // libtorch was built with gloo; its header declares ProcessGroupGloo only under this macro
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef REPTOK_WITH_NCCL
#define USE_C10D_NCCL  // the header declares ProcessGroupNCCL only under this macro
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <memory>
#include <mutex>

namespace reptok {

using Ms = std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------------------------
// Process groups
// ---------------------------------------------------------------------------------------------------------------

constexpr uint32_t kGroupMagic = 0x43313044;  // "C10D"

struct GroupBox {
  uint32_t magic = kGroupMagic;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::string backend;
  Ms timeout{0};
};

static void finalizeGroup(node_api_basic_env, void* data, void*) { delete static_cast<GroupBox*>(data); }

static GroupBox& unwrapGroup(const Napi::Value& v, const char* what) {
  if (v.IsExternal()) {
    auto* box = v.As<Napi::External<GroupBox>>().Data();
    if (box && box->magic == kGroupMagic) {
      if (!box->pg) throw Napi::Error::New(v.Env(), std::string(what) + ": the process group was destroyed");
      return *box;
    }
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a process group, got " + describeValue(v));
}

static std::string str(const Napi::Object& o, const char* key, const std::string& fallback = "") {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : fallback;
}

// The gloo transport device: an interface named by GLOO_SOCKET_IFNAME (as in PyTorch), else the address given
// (127.0.0.1 on one host), else the address this machine's hostname resolves to.
static std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& hostname) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (!hostname.empty()) return c10d::ProcessGroupGloo::createDeviceForHostname(hostname);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// initProcessGroup({ backend: 'gloo'|'nccl', store: 'tcp'|'file', rank, worldSize, timeoutMs,
//                    host?, port?, isServer?, path?, glooHostname?, glooThreads? }) -> group
// Blocks until every rank has joined (or the timeout passes).
static Napi::Value initProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "initProcessGroup: expected an options object");
  auto o = info[0].As<Napi::Object>();
  const int rank = static_cast<int>(toInt(o.Get("rank"), "initProcessGroup rank"));
  const int world = static_cast<int>(toInt(o.Get("worldSize"), "initProcessGroup worldSize"));
  const Ms timeout(toInt(o.Get("timeoutMs"), "initProcessGroup timeoutMs"));
  const std::string backend = str(o, "backend", "gloo");
  const std::string storeKind = str(o, "store", "tcp");
  if (world < 1 || rank < 0 || rank >= world)
    throw Napi::RangeError::New(
        env, "initProcessGroup: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(world) + ")");
  return guard(
      env,
      [&]() -> Napi::Value {
        auto box = std::make_unique<GroupBox>();
        box->timeout = timeout;
        box->backend = backend;
        if (storeKind == "file") {
          box->store = c10::make_intrusive<c10d::FileStore>(str(o, "path"), world);
        } else {
          c10d::TCPStoreOptions so;
          so.port = static_cast<std::uint16_t>(toInt(o.Get("port"), "initProcessGroup port"));
          so.isServer = toBool(o.Get("isServer"), "initProcessGroup isServer");
          so.numWorkers = world;
          so.waitWorkers = true;
          so.timeout = timeout;
          box->store = c10::make_intrusive<c10d::TCPStore>(str(o, "host", "127.0.0.1"), so);
        }
        box->store->setTimeout(timeout);
        if (backend == "gloo") {
          auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
          opts->devices.push_back(glooDevice(str(o, "glooHostname")));
          Napi::Value threads = o.Get("glooThreads");
          opts->threads = threads.IsNumber() ? static_cast<int>(toInt(threads, "glooThreads")) : 2;
          box->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(box->store, rank, world, opts);
        } else if (backend == "nccl") {
#ifdef REPTOK_WITH_NCCL
          auto opts = c10d::ProcessGroupNCCL::Options::create();
          opts->timeout = timeout;
          box->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(box->store, rank, world, opts);
#else
          TORCH_CHECK(false, "this libtorch has no NCCL (Debian's libtorch-dev is CPU-only); use backend gloo, or ",
                      "build reptok against a CUDA libtorch with LIBTORCH=<root> (see README, 'Several processes')");
#endif
        } else {
          TORCH_CHECK(false, "unknown backend '", backend, "' (gloo or nccl)");
        }
        napi_value v;
        NAPI_THROW_IF_FAILED(env, napi_create_external(env, box.get(), finalizeGroup, nullptr, &v), Napi::Value());
        box.release();
        return Napi::Value(env, v);
      },
      [&]() {
        return "initProcessGroup(" + backend + ", rank " + std::to_string(rank) + " of " + std::to_string(world) +
               ", " + storeKind + " store)";
      });
}

static Napi::Value destroyProcessGroup(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal()) {
    auto* box = info[0].As<Napi::External<GroupBox>>().Data();
    if (box && box->magic == kGroupMagic) {
      box->pg.reset();
      box->store.reset();
    }
  }
  return info.Env().Undefined();
}

static Napi::Value groupInfo(const Napi::CallbackInfo& info) {
  GroupBox& g = unwrapGroup(info[0], "groupInfo");
  auto o = Napi::Object::New(info.Env());
  o.Set("rank", g.pg->getRank());
  o.Set("worldSize", g.pg->getSize());
  o.Set("backend", g.backend);
  o.Set("timeoutMs", static_cast<double>(g.timeout.count()));
  return o;
}

// A collective's timeout: the call's own (ms > 0), else the group's.
static Ms timeoutOf(const GroupBox& g, const Napi::Value& v) {
  int64_t ms = v.IsNumber() ? toInt(v, "timeoutMs") : 0;
  return ms > 0 ? Ms(ms) : g.timeout;
}

static void waitFor(const c10::intrusive_ptr<c10d::Work>& work, Ms timeout) { work->wait(timeout); }

static std::string collectiveContext(const GroupBox& g, const char* name) {
  return std::string(name) + " (rank " + std::to_string(g.pg->getRank()) + " of " + std::to_string(g.pg->getSize()) +
         ", " + g.backend + ")";
}

static c10d::ReduceOp reduceOp(const Napi::Value& v) {
  std::string op = v.IsString() ? v.As<Napi::String>().Utf8Value() : "sum";
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw Napi::TypeError::New(v.Env(), "allReduce: unknown op '" + op + "' (sum, max, min, product)");
}

// allReduce(group, tensor, op, timeoutMs): in place, synchronous.
static Napi::Value allReduce(const Napi::CallbackInfo& info) {
  GroupBox& g = unwrapGroup(info[0], "allReduce");
  std::vector<at::Tensor> ts{unwrapTensor(info[1], "allReduce")};
  c10d::AllreduceOptions opts;
  opts.reduceOp = reduceOp(info[2]);
  opts.timeout = timeoutOf(g, info[3]);
  return guard(
      info.Env(),
      [&]() -> Napi::Value {
        waitFor(g.pg->allreduce(ts, opts), opts.timeout);
        return info.Env().Undefined();
      },
      [&]() { return collectiveContext(g, "allReduce"); });
}

// broadcast(group, tensor, root, timeoutMs): in place, synchronous.
static Napi::Value broadcast(const Napi::CallbackInfo& info) {
  GroupBox& g = unwrapGroup(info[0], "broadcast");
  std::vector<at::Tensor> ts{unwrapTensor(info[1], "broadcast")};
  c10d::BroadcastOptions opts;
  opts.rootRank = toInt(info[2], "broadcast root");
  opts.timeout = timeoutOf(g, info[3]);
  return guard(
      info.Env(),
      [&]() -> Napi::Value {
        waitFor(g.pg->broadcast(ts, opts), opts.timeout);
        return info.Env().Undefined();
      },
      [&]() { return collectiveContext(g, "broadcast"); });
}

// allGather(group, tensor, timeoutMs) -> one tensor per rank.
static Napi::Value allGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox& g = unwrapGroup(info[0], "allGather");
  std::vector<at::Tensor> in{unwrapTensor(info[1], "allGather")};
  c10d::AllgatherOptions opts;
  opts.timeout = timeoutOf(g, info[2]);
  return guard(
      env,
      [&]() -> Napi::Value {
        std::vector<std::vector<at::Tensor>> out(1);
        for (int r = 0; r < g.pg->getSize(); r++) out[0].push_back(at::empty_like(in[0]));
        waitFor(g.pg->allgather(out, in, opts), opts.timeout);
        auto arr = Napi::Array::New(env, out[0].size());
        for (size_t r = 0; r < out[0].size(); r++) arr.Set(static_cast<uint32_t>(r), wrapTensor(env, out[0][r]));
        return arr;
      },
      [&]() { return collectiveContext(g, "allGather"); });
}

static Napi::Value barrier(const Napi::CallbackInfo& info) {
  GroupBox& g = unwrapGroup(info[0], "barrier");
  c10d::BarrierOptions opts;
  opts.timeout = timeoutOf(g, info[1]);
  return guard(
      info.Env(),
      [&]() -> Napi::Value {
        waitFor(g.pg->barrier(opts), opts.timeout);
        return info.Env().Undefined();
      },
      [&]() { return collectiveContext(g, "barrier"); });
}

// ---------------------------------------------------------------------------------------------------------------
// The gradient reducer (PyTorch's DDP Reducer, reduced to what the trainer needs)
//
// Parameters are grouped into buckets of about `bucketBytes`, in reverse registration order (the order backward
// produces their gradients). prepare(sync) arms the hooks for the next backward; with sync = false (a
// gradient-accumulation micro-step) they do nothing and gradients just accumulate locally. When a gradient is
// accumulated, its hook copies it into its bucket; a bucket whose gradients are all in is divided by the world
// size and all-reduced asynchronously, buckets strictly in order so that every rank issues the same collectives in
// the same sequence. finalize() handles what backward never reached (parameters unused in this step: their local
// gradient, or zeros, take part), agrees with the other ranks on which parameters had a gradient anywhere (those
// with none keep none, as in a single process), waits for every bucket and copies the averages back into .grad.
// ---------------------------------------------------------------------------------------------------------------

constexpr uint32_t kReducerMagic = 0x52454443;  // "REDC"

struct Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  at::Tensor buffer;  // flat, one dtype and device
  size_t pending = 0;
  c10::intrusive_ptr<c10d::Work> work;
};

struct ReducerState {
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::vector<at::Tensor> params;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucketOf, slotOf;
  std::vector<char> ready, used;
  size_t nextLaunch = 0;
  bool armed = false;
  std::mutex mu;

  at::Tensor slice(size_t i) {
    Bucket& b = buckets[bucketOf[i]];
    return b.buffer.narrow(0, b.offsets[slotOf[i]], params[i].numel());
  }

  void launchReady() {
    while (nextLaunch < buckets.size() && buckets[nextLaunch].pending == 0) {
      Bucket& b = buckets[nextLaunch++];
      b.buffer.div_(pg->getSize());
      std::vector<at::Tensor> ts{b.buffer};
      b.work = pg->allreduce(ts);
    }
  }

  // Called with `mu` held. `grad` undefined: the parameter had no gradient in this step (zeros take part).
  void markReady(size_t i, const at::Tensor& grad) {
    ready[i] = 1;
    used[i] = grad.defined();
    at::NoGradGuard noGrad;
    if (grad.defined()) slice(i).copy_(grad.reshape(-1));
    else slice(i).zero_();
    buckets[bucketOf[i]].pending--;
    launchReady();
  }

  void onAccumulated(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || ready[i]) return;
    markReady(i, params[i].grad());
  }
};

struct ReadyHook : torch::autograd::FunctionPostHook {
  std::weak_ptr<ReducerState> state;
  size_t index;
  ReadyHook(std::weak_ptr<ReducerState> s, size_t i) : state(std::move(s)), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (auto s = state.lock()) s->onAccumulated(index);
    return outputs;
  }
};

struct ReducerBox {
  uint32_t magic = kReducerMagic;
  std::shared_ptr<ReducerState> state;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: a new one would lose the hook
  std::vector<uintptr_t> hooks;

  ~ReducerBox() {
    for (size_t i = 0; i < accumulators.size(); i++) accumulators[i]->del_post_hook(hooks[i]);
  }
};

static void finalizeReducer(node_api_basic_env, void* data, void*) { delete static_cast<ReducerBox*>(data); }

static ReducerBox& unwrapReducer(const Napi::Value& v, const char* what) {
  if (v.IsExternal()) {
    auto* box = v.As<Napi::External<ReducerBox>>().Data();
    if (box && box->magic == kReducerMagic) return *box;
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a gradient reducer, got " + describeValue(v));
}

// createReducer(group, params[], bucketBytes) -> reducer
static Napi::Value createReducer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox& g = unwrapGroup(info[0], "createReducer");
  auto params = toTensorVector(info[1], "createReducer params");
  const int64_t bucketBytes = toInt(info[2], "createReducer bucketBytes");
  return guard(
      env,
      [&]() -> Napi::Value {
        auto box = std::make_unique<ReducerBox>();
        auto s = std::make_shared<ReducerState>();
        s->pg = g.pg;
        s->params = params;
        const size_t n = params.size();
        s->bucketOf.assign(n, 0);
        s->slotOf.assign(n, 0);
        s->ready.assign(n, 0);
        s->used.assign(n, 0);
        // buckets in reverse order, one dtype/device each
        std::vector<int64_t> sizes;
        for (size_t k = n; k-- > 0;) {
          const at::Tensor& p = params[k];
          TORCH_CHECK(p.requires_grad() && p.is_leaf(), "parameter ", k, " (", describe(p),
                      ") is not a trainable leaf");
          bool fresh = s->buckets.empty();
          if (!fresh) {
            const at::Tensor& first = params[s->buckets.back().params[0]];
            fresh = first.scalar_type() != p.scalar_type() || first.device() != p.device() ||
                    (sizes.back() + p.numel()) * p.element_size() > bucketBytes;
          }
          if (fresh) {
            s->buckets.emplace_back();
            sizes.push_back(0);
          }
          Bucket& b = s->buckets.back();
          s->bucketOf[k] = s->buckets.size() - 1;
          s->slotOf[k] = b.params.size();
          b.params.push_back(k);
          b.offsets.push_back(sizes.back());
          sizes.back() += p.numel();
        }
        for (size_t b = 0; b < s->buckets.size(); b++) {
          const at::Tensor& first = params[s->buckets[b].params[0]];
          s->buckets[b].buffer = at::zeros({sizes[b]}, first.options().requires_grad(false));
        }
        for (size_t k = 0; k < n; k++) {
          auto acc = torch::autograd::impl::grad_accumulator(params[k]);
          box->hooks.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(s, k)));
          box->accumulators.push_back(std::move(acc));
        }
        box->state = s;
        napi_value v;
        NAPI_THROW_IF_FAILED(env, napi_create_external(env, box.get(), finalizeReducer, nullptr, &v), Napi::Value());
        box.release();
        return Napi::Value(env, v);
      },
      [&]() { return collectiveContext(g, "createReducer"); });
}

static Napi::Value reducerInfo(const Napi::CallbackInfo& info) {
  ReducerBox& r = unwrapReducer(info[0], "reducerInfo");
  auto sizes = Napi::Array::New(info.Env(), r.state->buckets.size());
  for (size_t b = 0; b < r.state->buckets.size(); b++)
    sizes.Set(static_cast<uint32_t>(b), static_cast<double>(r.state->buckets[b].buffer.nbytes()));
  auto o = Napi::Object::New(info.Env());
  o.Set("bucketBytes", sizes);
  return o;
}

// reducerPrepare(reducer, sync): arms (sync) or disarms the hooks for the next backward.
static Napi::Value reducerPrepare(const Napi::CallbackInfo& info) {
  ReducerBox& r = unwrapReducer(info[0], "reducerPrepare");
  bool sync = toBool(info[1], "reducerPrepare sync");
  auto& s = *r.state;
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.armed && sync) return info.Env().Undefined();  // several backwards in one synchronised micro-step
  s.armed = sync;
  std::fill(s.ready.begin(), s.ready.end(), 0);
  std::fill(s.used.begin(), s.used.end(), 0);
  for (auto& b : s.buckets) {
    b.pending = b.params.size();
    b.work.reset();
  }
  s.nextLaunch = 0;
  return info.Env().Undefined();
}

// reducerFinalize(reducer, timeoutMs) -> { waitMs, unused }: averaged gradients in every parameter's .grad.
static Napi::Value reducerFinalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReducerBox& r = unwrapReducer(info[0], "reducerFinalize");
  const Ms timeout(toInt(info[1], "reducerFinalize timeoutMs"));
  auto& s = *r.state;
  return guard(
      env,
      [&]() -> Napi::Value {
        std::lock_guard<std::mutex> lock(s.mu);
        TORCH_CHECK(s.armed, "finalize without prepare(sync=true) before backward (internal error)");
        at::NoGradGuard noGrad;
        const size_t n = s.params.size();
        // parameters backward did not reach, in bucket order so that launches stay in order
        for (auto& b : s.buckets)
          for (size_t k : b.params)
            if (!s.ready[k]) s.markReady(k, s.params[k].grad());
        auto t0 = std::chrono::steady_clock::now();
        // which parameters had a gradient on any rank
        std::vector<int> usedLocal(s.used.begin(), s.used.end());
        at::Tensor usedAnywhere = at::tensor(usedLocal, at::kInt);
        if (n > 0 && !s.params[0].device().is_cpu()) usedAnywhere = usedAnywhere.to(s.params[0].device());
        std::vector<at::Tensor> flags{usedAnywhere};
        waitFor(s.pg->allreduce(flags), timeout);
        for (auto& b : s.buckets) waitFor(b.work, timeout);
        double waitMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        auto usedCpu = usedAnywhere.cpu();
        const int* usedCount = usedCpu.data_ptr<int>();
        int64_t unused = 0;
        for (size_t k = 0; k < n; k++) {
          at::Tensor& p = s.params[k];
          if (usedCount[k] == 0) {
            unused++;
            continue;
          }
          at::Tensor avg = s.slice(k).view(p.sizes());
          if (p.grad().defined()) p.mutable_grad().copy_(avg);
          else p.mutable_grad() = avg.clone();
        }
        s.armed = false;
        auto o = Napi::Object::New(env);
        o.Set("waitMs", waitMs);
        o.Set("unused", static_cast<double>(unused));
        return o;
      },
      [&]() {
        return "all-reduce of gradients (rank " + std::to_string(s.pg->getRank()) + " of " +
               std::to_string(s.pg->getSize()) + ")";
      });
}

void initDistributed(Napi::Env env, Napi::Object exports) {
  exportFn<initProcessGroup>(env, exports, "initProcessGroup");
  exportFn<destroyProcessGroup>(env, exports, "destroyProcessGroup");
  exportFn<groupInfo>(env, exports, "groupInfo");
  exportFn<allReduce>(env, exports, "allReduce");
  exportFn<broadcast>(env, exports, "broadcast");
  exportFn<allGather>(env, exports, "allGather");
  exportFn<barrier>(env, exports, "barrier");
  exportFn<createReducer>(env, exports, "createReducer");
  exportFn<reducerInfo>(env, exports, "reducerInfo");
  exportFn<reducerPrepare>(env, exports, "reducerPrepare");
  exportFn<reducerFinalize>(env, exports, "reducerFinalize");
}

}  // namespace reptok
