// reptok's native engine: a thin N-API layer over libtorch. See src/engine/native.ts for the loader.
#include "common.h"

namespace reptok {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  initTensors(env, exports);
  initDispatch(env, exports);
  initAutograd(env, exports);
  initRandom(env, exports);
  initOptim(env, exports);
  initRuntime(env, exports);
  initProfiler(env, exports);
  initLinear(env, exports);
  initAttention(env, exports);
  initDistributed(env, exports);
  return exports;
}

NODE_API_MODULE(reptok, Init)

}  // namespace reptok
