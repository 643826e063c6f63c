// The `reptok::` operator library: every operator of this folder registered with the c10 dispatcher, so JavaScript
// calls them like any ATen op, the profiler lists them, and autograd records them (each is a custom Function).
//
// Fused kernels for chains that eager code runs as many small kernels, each pass re-reading activations from
// memory: RMSNorm with a scale (rms-norm.cc), the SwiGLU gate (swiglu.cc), the exact GELU (gelu.cc, where ATen's
// erf runs at a scalar rate), the cosine-attention q/k path with axial RoPE (cosine-rope-qk.cc), unmasked attention
// (attention.cc) and the generator's token-mixing MLP (token-mlp.cc); each is one pass forward and one backward.
// CPU, float32, float64 or bfloat16 (computed in float32; see fused-common.h); src/engine/fused.ts picks the
// composite ATen path for other devices and dtypes. Linear layers on oneDNN's GEMMs and matmul primitives (linear.cc,
// onednn.cc), CPU float32 and bfloat16. The backwards are not differentiable: create_graph through a reptok::
// operator is refused with an error.
#include "../common.h"
#include "ops.h"

#include <torch/library.h>

namespace reptok {

void refuseDoubleBackward(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), op, ": the fused kernel has no double backward; build the graph with the composite ops to differentiate twice");
}

TORCH_LIBRARY(reptok, m) {
  m.def("rms_norm(Tensor x, Tensor scale, float eps) -> Tensor", &rmsNorm);
  m.def("swiglu(Tensor h) -> Tensor", &swiglu);
  m.def("gelu(Tensor x) -> Tensor", &gelu);
  m.def("cosine_rope_qk(Tensor qkv, Tensor scale, Tensor cos, Tensor sin) -> (Tensor, Tensor)", &cosineRopeQk);
  m.def("attention(Tensor q, Tensor k, Tensor v, float scale) -> Tensor", &attention);
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor", &linear);
  m.def("token_mlp(Tensor x, Tensor w1, Tensor b1, Tensor w2, Tensor b2) -> Tensor", &tokenMlp);
}

}  // namespace reptok
