// The fused token-mixing MLP of the MLP-Mixer generator (`reptok::token_mlp`): out = W2 · gelu(W1 · x + b1) + b2
// along the token axis of x (B, L, dim), with the exact (erf) GELU. Eager code runs it as a transpose to (B, dim, L),
// a contiguous copy, two GEMMs with K = L and K = Lh (3 and 9 for the class-conditional generator: far too small for
// a BLAS to reach speed), bias copies, the GELU and a transpose back, each a pass over the activations. Here each
// task — one sample, one chunk of dim columns — reads its L rows of x in place, keeps the hidden rows (Lh, chunk)
// in cache and writes the output rows once. Registered in library.cc.
#include "fused-common.h"

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Token MLP: x (B, L, D) -> h (B, Lh, D) = W1 x + b1 -> out (B, L, D) = W2 gelu(h) + b2
// x, out, g (the output gradient) and gx stored as T (float32, float64 or bfloat16), the weights and biases and
// every sum in Acc<T> (float32 for bfloat16: autocast keeps parameters in float32). W1 (Lh, L), W2 (L, Lh)
// contiguous; x rows may be strided (the last dim contiguous); out, g and gx contiguous.
// Task t = (sample t / chunks, columns [c·C, c·C + C) for c = t % chunks).
// ---------------------------------------------------------------------------------------------------------------

template <typename T>
struct TokenMlpArgs {
  const T *x, *g;                           // g: the output gradient (backward only)
  const Acc<T> *w1, *b1, *w2, *b2;
  T* out;                                   // y, or gx
  Acc<T>* partial;                          // per-task weight-gradient sums (backward only)
  int64_t L, Lh, D, C, chunks, xsB, xsL;
};

// Σ a[j] with eight accumulators, as dot() (fused-common.h): a single running sum does not vectorise (strict float
// order) and is one add's latency per element.
template <typename C>
REPTOK_INLINE C sum(const C* a, int64_t n) {
  C acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k];
  C s = 0;
  for (; j < n; j++) s += a[j];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Per task, the backward's partial sums in this order (summed over the tasks afterwards).
inline int64_t partialSize(int64_t L, int64_t Lh) { return Lh * L + Lh + L * Lh + L; }

// One parallel_for chunk's buffers, rows C apart, in Acc<T>: x widened (L rows), the hidden rows (Lh), and in the
// backward the output gradient widened (L) and the hidden rows' GELU derivative (Lh); the forward's output row.
template <typename T>
struct Scratch {
  std::vector<Acc<T>> x, h, g, d, o;
  Scratch(const TokenMlpArgs<T>& a, bool backward)
      : x(a.L * a.C), h(a.Lh * a.C), g(backward ? a.L * a.C : 0), d(backward ? a.Lh * a.C : 0), o(a.C) {}
};

// Rows [0, rows) of `src` (`stride` apart) widened into `dst` (C apart), n columns each.
template <typename T>
REPTOK_INLINE void widenRows(const T* src, int64_t stride, int64_t rows, int64_t n, int64_t C, Acc<T>* dst) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) dst[r * C + j] = toAcc(src[r * stride + j]);
}

// h (Lh rows C apart) = W1 x + b1 over the n columns of a chunk, x widened (L rows C apart)
template <typename T>
REPTOK_INLINE void hiddenRows(const TokenMlpArgs<T>& a, const Acc<T>* x, int64_t n, Acc<T>* h) {
  for (int64_t k = 0; k < a.Lh; k++) {
    Acc<T>* hk = h + k * a.C;
    const Acc<T> bk = a.b1[k];
    for (int64_t j = 0; j < n; j++) hk[j] = bk;
    for (int64_t l = 0; l < a.L; l++) {
      const Acc<T> w = a.w1[k * a.L + l];
      const Acc<T>* xl = x + l * a.C;
      for (int64_t j = 0; j < n; j++) hk[j] += w * xl[j];
    }
  }
}

template <typename T>
REPTOK_INLINE void tokenMlpTasksBody(const TokenMlpArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  Scratch<T> s(a, false);
  C *x = s.x.data(), *h = s.h.data(), *o = s.o.data();
  for (int64_t t = begin; t < end; t++) {
    const int64_t b = t / a.chunks, j0 = (t % a.chunks) * a.C, n = std::min(a.C, a.D - j0);
    widenRows(a.x + b * a.xsB + j0, a.xsL, a.L, n, a.C, x);
    hiddenRows(a, x, n, h);
    for (int64_t i = 0; i < a.Lh * a.C; i++) h[i] = h[i] * normalCdf(h[i]);  // whole rows: fixed trip count
    for (int64_t l = 0; l < a.L; l++) {
      const C bl = a.b2[l];
      for (int64_t j = 0; j < n; j++) o[j] = bl;
      for (int64_t k = 0; k < a.Lh; k++) {
        const C w = a.w2[l * a.Lh + k];
        const C* hk = h + k * a.C;
        for (int64_t j = 0; j < n; j++) o[j] += w * hk[j];
      }
      T* out = a.out + (b * a.L + l) * a.D + j0;
      for (int64_t j = 0; j < n; j++) out[j] = fromAcc<T>(o[j]);
    }
  }
}
REPTOK_SIMD_KERNEL(tokenMlpTasks, TokenMlpArgs)

// With u = gelu(h): gW2[l, k] = Σ g_l u_k, gb2 = Σ g; gh_k = gelu'(h_k) Σ_l W2[l, k] g_l; gW1[k, l] = Σ gh_k x_l,
// gb1 = Σ gh; gx_l = Σ_k W1[k, l] gh_k. h is recomputed from x rather than saved by the forward (see backward()).
template <typename T>
REPTOK_INLINE void tokenMlpGradTasksBody(const TokenMlpArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  Scratch<T> s(a, true);
  C *x = s.x.data(), *h = s.h.data(), *g = s.g.data(), *d = s.d.data(), *o = s.o.data();
  const int64_t L = a.L, Lh = a.Lh;
  for (int64_t t = begin; t < end; t++) {
    const int64_t b = t / a.chunks, j0 = (t % a.chunks) * a.C, n = std::min(a.C, a.D - j0);
    widenRows(a.x + b * a.xsB + j0, a.xsL, L, n, a.C, x);
    widenRows(a.g + b * L * a.D + j0, a.D, L, n, a.C, g);
    C *pW1 = a.partial + t * partialSize(L, Lh), *pb1 = pW1 + Lh * L, *pW2 = pb1 + Lh, *pb2 = pW2 + L * Lh;
    hiddenRows(a, x, n, h);
    for (int64_t i = 0; i < Lh * a.C; i++) {
      d[i] = geluGrad(h[i]);
      h[i] = h[i] * normalCdf(h[i]);
    }
    for (int64_t l = 0; l < L; l++) {
      const C* gl = g + l * a.C;
      pb2[l] = sum(gl, n);
      for (int64_t k = 0; k < Lh; k++) pW2[l * Lh + k] = dot(gl, h + k * a.C, n);
    }
    for (int64_t k = 0; k < Lh; k++) {  // d_k becomes gh_k
      C* dk = d + k * a.C;
      C* gu = h + k * a.C;  // u_k is no longer needed: Σ_l W2[l, k] g_l goes there
      for (int64_t j = 0; j < n; j++) gu[j] = 0;
      for (int64_t l = 0; l < L; l++) {
        const C w = a.w2[l * Lh + k];
        const C* gl = g + l * a.C;
        for (int64_t j = 0; j < n; j++) gu[j] += w * gl[j];
      }
      for (int64_t j = 0; j < n; j++) dk[j] *= gu[j];
      pb1[k] = sum(dk, n);
      for (int64_t l = 0; l < L; l++) pW1[k * L + l] = dot(dk, x + l * a.C, n);
    }
    for (int64_t l = 0; l < L; l++) {
      for (int64_t j = 0; j < n; j++) o[j] = 0;
      for (int64_t k = 0; k < Lh; k++) {
        const C w = a.w1[k * L + l];
        const C* dk = d + k * a.C;
        for (int64_t j = 0; j < n; j++) o[j] += w * dk[j];
      }
      T* gx = a.out + (b * L + l) * a.D + j0;
      for (int64_t j = 0; j < n; j++) gx[j] = fromAcc<T>(o[j]);
    }
  }
}
REPTOK_SIMD_KERNEL(tokenMlpGradTasks, TokenMlpArgs)

// Columns per task: the chunk's buffers (Scratch: (2L + 2Lh + 1) rows of C) stay within the 32–48 KiB L1 cache —
// at most 160 columns for the class-conditional generator (L = 3, Lh = 9) — and the chunks split D evenly (dim
// 1152: 8 chunks of 144, not 7 of 160 and a short one).
int64_t chunkColumns(int64_t L, int64_t Lh, int64_t D) {
  const int64_t most = std::max<int64_t>(16, std::min<int64_t>(256, 2048 / (L + Lh) / 16 * 16));
  const int64_t chunks = std::max<int64_t>(1, (D + most - 1) / most);
  return std::min(most, ((D + chunks - 1) / chunks + 15) / 16 * 16);
}

// Σ over the rows of a contiguous (rows, n) matrix, in float64 and row order, returned in the matrix's dtype.
Tensor sumRows(const Tensor& m) {
  const int64_t rows = m.size(0), n = m.size(1);
  std::vector<double> acc(n, 0.0);
  dispatchFloating(m.scalar_type(), [&](auto t) {
    using T = decltype(t);
    const T* p = ptr<T>(m);
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < n; j++) acc[j] += double(toAcc(p[i * n + j]));
  });
  return at::tensor(acc, m.options().dtype(at::kDouble)).to(m.scalar_type());
}

template <typename T>
TokenMlpArgs<T> args(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  const int64_t L = x.size(1), Lh = w1.size(0), D = x.size(2), C = chunkColumns(L, Lh, D);
  return {ptr<T>(x), nullptr, ptr<Acc<T>>(w1), ptr<Acc<T>>(b1), ptr<Acc<T>>(w2), ptr<Acc<T>>(b2), nullptr, nullptr,
          L, Lh, D, C, D ? (D + C - 1) / C : 0, x.stride(0), x.stride(1)};
}

struct TokenMlpFn : public torch::autograd::Function<TokenMlpFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x0, const Tensor& w10, const Tensor& b10, const Tensor& w20,
                        const Tensor& b20) {
    // x as given when its rows are contiguous (any row strides: a slice or an expanded batch reads in place)
    const Tensor x = x0.stride(2) == 1 ? x0 : x0.contiguous();
    const Tensor w1 = w10.contiguous(), b1 = b10.contiguous(), w2 = w20.contiguous(), b2 = b20.contiguous();
    Tensor y = at::empty(x.sizes(), x.options());
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      TokenMlpArgs<T> a = args<T>(x, w1, b1, w2, b2);
      a.out = ptr<T>(y);
      at::parallel_for(0, x.size(0) * a.chunks, 1, [&](int64_t begin, int64_t end) { tokenMlpTasks(a, begin, end); });
    });
    // The backward recomputes h from x: saving h would write Lh/L = 3× the input's size per layer in the forward
    // and read it back, where recomputing costs L · Lh multiply-adds per column, less than the GELU both need.
    ctx->save_for_backward({x, w1, b1, w2});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::token_mlp");
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w1 = saved[1], &b1 = saved[2], &w2 = saved[3];
    const Tensor g = grads[0].to(x.scalar_type()).contiguous();
    const int64_t B = x.size(0), L = x.size(1), Lh = w1.size(0);
    Tensor gx = at::empty(x.sizes(), x.options()), partial;
    dispatchFloating(x.scalar_type(), [&](auto t) {
      using T = decltype(t);
      TokenMlpArgs<T> a = args<T>(x, w1, b1, w2, Tensor());  // b2: forward only
      partial = at::empty({B * a.chunks, partialSize(L, Lh)}, w1.options());
      a.g = ptr<T>(g);
      a.out = ptr<T>(gx);
      a.partial = ptr<Acc<T>>(partial);
      at::parallel_for(0, B * a.chunks, 1, [&](int64_t begin, int64_t end) { tokenMlpGradTasks(a, begin, end); });
    });
    // the tasks' partial sums, added in task order in float64 (a few thousand rows of 2·L·Lh + L + Lh): the same
    // result for any number of threads, which a parallel ATen reduction would not promise
    const Tensor sums = sumRows(partial);
    const auto part = [&](int64_t from, int64_t n) { return sums.narrow(0, from, n); };
    const auto want = [&](int i, Tensor t) { return ctx->needs_input_grad(i) ? t : Tensor(); };
    return {want(0, gx), want(1, part(0, Lh * L).view({Lh, L})), want(2, part(Lh * L, Lh)),
            want(3, part(Lh * L + Lh, L * Lh).view({L, Lh})), want(4, part(2 * Lh * L + Lh, L))};
  }
};

}  // namespace

// x float32, float64 or bfloat16; the weights and biases in x's dtype, float32 for bfloat16 x (the parameters
// autocast keeps in float32). The output takes x's dtype, each gradient its input's.
Tensor tokenMlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  const char* op = "reptok::token_mlp";
  checkCpuFloat(x, op, "x");
  const at::ScalarType acc = accType(x.scalar_type());
  for (const Tensor* t : {&w1, &b1, &w2, &b2})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == acc, op, ": weights and biases must be ", acc,
                " CPU tensors for ", x.scalar_type(), " x, got ", t->scalar_type(), " on ", t->device());
  TORCH_CHECK(x.dim() == 3, op, ": x must be (B, L, dim), got ", x.sizes());
  const int64_t L = x.size(1), Lh = w1.dim() == 2 ? w1.size(0) : -1;
  TORCH_CHECK(w1.dim() == 2 && w1.size(1) == L && b1.dim() == 1 && b1.size(0) == Lh, op, ": w1 ", w1.sizes(),
              " and b1 ", b1.sizes(), " must be (Lh, L) and (Lh) for x ", x.sizes());
  TORCH_CHECK(w2.dim() == 2 && w2.size(0) == L && w2.size(1) == Lh && b2.dim() == 1 && b2.size(0) == L, op, ": w2 ",
              w2.sizes(), " and b2 ", b2.sizes(), " must be (L, Lh) = (", L, ", ", Lh, ") and (L)");
  return TokenMlpFn::apply(x, w1, b1, w2, b2);
}

}  // namespace reptok
