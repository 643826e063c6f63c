// The reptok:: operators, one per file in this folder; library.cc registers them with the dispatcher.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace reptok {

at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& scale, double eps);
at::Tensor swiglu(const at::Tensor& h);
at::Tensor gelu(const at::Tensor& x);
std::tuple<at::Tensor, at::Tensor> cosineRopeQk(const at::Tensor& qkv, const at::Tensor& scale, const at::Tensor& cos,
                                                const at::Tensor& sin);
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);
at::Tensor tokenMlp(const at::Tensor& x, const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                    const at::Tensor& b2);
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b);

}  // namespace reptok
