// Unmasked attention in one kernel per (batch, head) (`reptok::attention`), where eager code runs two batched
// matmuls and a softmax. Registered in library.cc.
#include "fused-common.h"

#include <atomic>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace reptok {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Attention without a mask: out = softmax(scale · q kᵀ) v for every (batch, head).
// q (B, H, Lq, e), k and v (B, H, Lk, e), any strides with unit stride along e (views of a qkv projection read in
// place) -> out (B, Lq, H, e), the layout the output projection reads, so no transpose copy follows.
// Eager code runs this as two batched matmuls — libtorch 1.13 makes one BLAS call per (batch, head) on 65×65
// matrices, where thread start-up outweighs the arithmetic — plus a softmax pass. Here one task per (batch, head)
// copies its panels into zero-padded scratch (widths rounded up to the vector length) and runs every product
// through one register-blocked kernel, the scores never leaving L1.
// bfloat16 inputs take one of two paths for the products (softmax, its gradient and every sum are float32 on both):
// - on CPUs with AVX512-BF16, vdpbf16ps on bf16 operands with float32 accumulation (section "bfloat16 products on
//   AVX512-BF16" below), the probabilities and dS rounded to bf16 as operands, as PyTorch's bf16 composite does;
// - everywhere else, and when switched off (attentionBf16Dot, a test hook), the operands widened into float32 panels
//   and the generic kernel below, as for float32 inputs.
// ---------------------------------------------------------------------------------------------------------------

// 64-byte vectors (GCC vector extensions): one zmm register on AVX-512, two ymm on AVX2, four xmm on baseline.
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(64)));
  static constexpr int64_t N = 64 / sizeof(T);
};
template <typename T>
REPTOK_INLINE typename Simd<T>::V loadV(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
// op over the lanes of a vector (Bytes long), as a tree: the halves combined until two lanes are left. A chain through
// all lanes would wait on each op's latency in turn, and a loop over its lanes goes through memory (a store
// forwarding stall per lane), once per softmax row.
template <typename T, int Bytes>
struct Lanes {
  typedef T V __attribute__((vector_size(Bytes)));
  template <typename Op>
  static REPTOK_INLINE T reduce(V v, Op op) {
    if constexpr (Bytes == 2 * sizeof(T)) {
      return op(v[0], v[1]);
    } else {
      typename Lanes<T, Bytes / 2>::V lo, hi;
      std::memcpy(&lo, &v, sizeof lo);
      std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
      return Lanes<T, Bytes / 2>::reduce(op(lo, hi), op);
    }
  }
};
template <typename T, typename Op>
REPTOK_INLINE T reduceLanes(typename Simd<T>::V v, Op op) { return Lanes<T, 64>::reduce(v, op); }

// out (M, W) = A (M, K) · P (K, W) with A read as a[m·am + k·ak] (so Aᵀ is the same call with the strides
// swapped), P rows ldp apart, W a multiple of the vector length. R rows of out at a time, one vector of columns.
// P and out are scratch in the compute type C; A may be stored values (T, widened as read) or scratch.
template <typename C, int R, typename A>
REPTOK_INLINE void gemmRows(const A* a, int64_t am, int64_t ak, int64_t K, const C* p, int64_t ldp, int64_t W, C* out, int64_t ldo) {
  using V = typename Simd<C>::V;
  for (int64_t w = 0; w < W; w += Simd<C>::N) {
    V acc[R] = {};
    for (int64_t kk = 0; kk < K; kk++) {
      const V pv = loadV(p + kk * ldp + w);
      for (int r = 0; r < R; r++) acc[r] += toAcc(a[r * am + kk * ak]) * pv;
    }
    for (int r = 0; r < R; r++) std::memcpy(out + r * ldo + w, &acc[r], sizeof(V));
  }
}
template <typename C, typename A>
REPTOK_INLINE void gemm(const A* a, int64_t am, int64_t ak, int64_t M, int64_t K, const C* p, int64_t ldp, int64_t W, C* out, int64_t ldo) {
  int64_t m = 0;
  for (; m + 8 <= M; m += 8) gemmRows<C, 8>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
  for (; m + 4 <= M; m += 4) gemmRows<C, 4>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
  for (; m < M; m++) gemmRows<C, 1>(a + m * am, am, ak, K, p, ldp, W, out + m * ldo, ldo);
}

// Copies L strided rows of length e into (L, ep) zero-padded rows, or transposed into (e, Lp) zero-padded rows,
// widened to the scratch type C.
template <typename T, typename C>
REPTOK_INLINE void padRows(const T* x, int64_t stride, int64_t L, int64_t e, int64_t ep, C* dst) {
  for (int64_t j = 0; j < L; j++) {
    for (int64_t d = 0; d < e; d++) dst[j * ep + d] = toAcc(x[j * stride + d]);
    std::fill(dst + j * ep + e, dst + (j + 1) * ep, C(0));
  }
}
template <typename T, typename C>
REPTOK_INLINE void padTransposed(const T* x, int64_t stride, int64_t L, int64_t e, int64_t Lp, C* dst) {
  std::fill(dst, dst + e * Lp, C(0));
  for (int64_t j = 0; j < L; j++)
    for (int64_t d = 0; d < e; d++) dst[d * Lp + j] = toAcc(x[j * stride + d]);
}
// Rounds L rows of length e, ep apart in the scratch, into dst rows `stride` apart.
template <typename T, typename C>
REPTOK_INLINE void unpadRows(const C* src, int64_t L, int64_t e, int64_t ep, T* dst, int64_t stride) {
  for (int64_t j = 0; j < L; j++)
    for (int64_t d = 0; d < e; d++) dst[j * stride + d] = fromAcc<T>(src[j * ep + d]);
}

// Softmax of scale · s[0, n) in place; the padding s[n, np) is set to 0. np is a multiple of the vector length (the
// scratch rows are), so every pass runs over whole vectors: the lanes past n are masked in registers (-inf for the
// maximum, 0 for the sum). Scalar tails, or filling the padding with scalar stores, cost more than the vectors on
// 69- or 130-long rows (a vector load of freshly stored scalars waits for them to retire: no store forwarding).
template <typename T>
REPTOK_INLINE void softmaxRow(T* s, int64_t n, int64_t np, T scale) {
  using V = typename Simd<T>::V;
  constexpr int64_t N = Simd<T>::N;
  V lane;  // lane index, compared with n - j: lanes below it are in the row
  for (int l = 0; l < N; l++) lane[l] = T(l);
  const V ninf = V{} - std::numeric_limits<T>::infinity(), zero = {};
  V m = ninf;
  for (int64_t j = 0; j < np; j += N) {
    const auto in = lane < T(n - j);
    const V x = in ? loadV(s + j) * scale : zero;  // the padding as 0: exp of 0 - max stays finite
    std::memcpy(s + j, &x, sizeof x);
    const V xm = in ? x : ninf;
    m = xm > m ? xm : m;
  }
  const T mx = reduceLanes<T>(m, [](auto x, auto y) { return x > y ? x : y; });
  for (int64_t j = 0; j < np; j++) s[j] = expApprox(s[j] - mx);
  V sum = zero;
  for (int64_t j = 0; j < np; j += N) {
    const V x = lane < T(n - j) ? loadV(s + j) : zero;
    std::memcpy(s + j, &x, sizeof x);
    sum += x;
  }
  const T inv = T(1) / reduceLanes<T>(sum, [](auto x, auto y) { return x + y; });
  for (int64_t j = 0; j < np; j++) s[j] *= inv;
}

// dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)) in place of dP, for Lq rows Lkp apart; the padding (P = 0) gets dS = 0.
template <typename C>
REPTOK_INLINE void softmaxGradRows(const C* P, C* ds, int64_t Lq, int64_t Lk, int64_t Lkp, C scale) {
  for (int64_t i = 0; i < Lq; i++) {
    const C* pi = P + i * Lkp;
    C* di = ds + i * Lkp;
    const C r = dot(pi, di, Lk);
    for (int64_t j = 0; j < Lkp; j++) di[j] = scale * (pi[j] * (di[j] - r));
  }
}

// Stored values are T (float32, float64, bfloat16); scratch, scores and probabilities are Acc<T>, so bfloat16 inputs
// get float32 products, softmax and sums, rounded once into the outputs.
template <typename T>
struct AttentionArgs {
  const T *q, *k, *v, *go;  // go: gradient of out (backward only)
  T* out;                   // forward: (B, Lq, H, e)
  Acc<T>* p;                // probabilities (B·H, Lq, Lkp): written by a forward that keeps them, read by backward
  T *gq, *gk, *gv;          // backward: gradients (B, H, L, e), each null when not needed
  int64_t H, Lq, Lk, e;
  int64_t qs[3], ks[3], vs[3], gos[3];  // strides of (b, h, l) for q, k, v, go
  Acc<T> scale;
};

// Tasks are b·H + h.
template <typename T>
REPTOK_INLINE void attentionTasksBody(const AttentionArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<C>::N), ep = roundUp(e, Simd<C>::N);
  // float q is read in place; bf16 q is widened into a panel first, so the product broadcasts floats from memory
  constexpr bool widenQ = !std::is_same<T, C>::value;
  std::vector<C> kt(e * Lkp), vp(Lk * ep), scores(a.p ? 0 : Lq * Lkp), o(Lq * ep), qp(widenQ ? Lq * e : 0);
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const T* q = a.q + b * a.qs[0] + h * a.qs[1];
    C* s = a.p ? a.p + task * Lq * Lkp : scores.data();
    padTransposed(a.k + b * a.ks[0] + h * a.ks[1], a.ks[2], Lk, e, Lkp, kt.data());
    padRows(a.v + b * a.vs[0] + h * a.vs[1], a.vs[2], Lk, e, ep, vp.data());
    if constexpr (widenQ) {
      padRows(q, a.qs[2], Lq, e, e, qp.data());
      gemm(qp.data(), e, int64_t(1), Lq, e, kt.data(), Lkp, Lkp, s, Lkp);  // q kᵀ (Lq, Lkp)
    } else {
      gemm(q, a.qs[2], int64_t(1), Lq, e, kt.data(), Lkp, Lkp, s, Lkp);
    }
    for (int64_t i = 0; i < Lq; i++) softmaxRow(s + i * Lkp, Lk, Lkp, a.scale);
    gemm(s, Lkp, int64_t(1), Lq, Lk, vp.data(), ep, ep, o.data(), ep);  // P v (Lq, ep)
    unpadRows(o.data(), Lq, e, ep, a.out + (b * Lq * H + h) * e, H * e);  // into (B, Lq, H, e)
  }
}
REPTOK_SIMD_KERNEL(attentionTasks, AttentionArgs)

// With P the probabilities and dO the output gradient, per (batch, head):
//   dV = Pᵀ dO;  dP = dO Vᵀ;  dS = scale · P ⊙ (dP − rowsum(P ⊙ dP));  dQ = dS K;  dK = dSᵀ Q
template <typename T>
REPTOK_INLINE void attentionGradTasksBody(const AttentionArgs<T>& a, int64_t begin, int64_t end) {
  using C = Acc<T>;
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<C>::N), ep = roundUp(e, Simd<C>::N);
  std::vector<C> gop(Lq * ep), vt(e * Lkp), ds(Lq * Lkp), rows(std::max(Lq, Lk) * ep), g(std::max(Lq, Lk) * ep);
  const auto unpad = [&](const C* src, int64_t L, T* dst) { unpadRows(src, L, e, ep, dst, e); };
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const C* P = a.p + task * Lq * Lkp;
    padRows(a.go + b * a.gos[0] + h * a.gos[1], a.gos[2], Lq, e, ep, gop.data());
    if (a.gv) {
      gemm(P, int64_t(1), Lkp, Lk, Lq, gop.data(), ep, ep, g.data(), ep);  // Pᵀ dO (Lk, ep)
      unpad(g.data(), Lk, a.gv + task * Lk * e);
    }
    if (!a.gq && !a.gk) continue;
    padTransposed(a.v + b * a.vs[0] + h * a.vs[1], a.vs[2], Lk, e, Lkp, vt.data());
    gemm(gop.data(), ep, int64_t(1), Lq, e, vt.data(), Lkp, Lkp, ds.data(), Lkp);  // dP = dO vᵀ (Lq, Lkp)
    softmaxGradRows(P, ds.data(), Lq, Lk, Lkp, a.scale);
    if (a.gq) {
      padRows(a.k + b * a.ks[0] + h * a.ks[1], a.ks[2], Lk, e, ep, rows.data());
      gemm(ds.data(), Lkp, int64_t(1), Lq, Lk, rows.data(), ep, ep, g.data(), ep);  // dS k (Lq, ep)
      unpad(g.data(), Lq, a.gq + task * Lq * e);
    }
    if (a.gk) {
      padRows(a.q + b * a.qs[0] + h * a.qs[1], a.qs[2], Lq, e, ep, rows.data());
      gemm(ds.data(), int64_t(1), Lkp, Lk, Lq, rows.data(), ep, ep, g.data(), ep);  // dSᵀ q (Lk, ep)
      unpad(g.data(), Lk, a.gk + task * Lk * e);
    }
  }
}
REPTOK_SIMD_KERNEL(attentionGradTasks, AttentionArgs)

// ---------------------------------------------------------------------------------------------------------------
// bfloat16 products on AVX512-BF16. vdpbf16ps (_mm512_dpbf16_ps) multiplies bf16 pairs into float32 lanes:
// acc[l] += a[2l]·b[2l] + a[2l+1]·b[2l+1], two multiply-adds per lane where the widened path's FMA does one. Each
// product out (M, W) = A (M, K) · B (K, W) takes its operands as bf16 pairs along the reduction dimension K: B
// interleaved as (⌈K/2⌉, W, 2), 16 columns × one pair per vector; A as (M, ⌈K/2⌉, 2), one pair broadcast per row;
// an odd K's last pair padded with a zero. q, k, v and dO are bf16 already (copied); the probabilities P and dS stay
// float32 for the softmax and its gradient, and are rounded to bf16 only as operands of the products that consume
// them — as PyTorch's autocast composite does, whose second bmm runs on bf16 P. The P that backward reads stays
// float32, in the widened path's layout: dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)) is then computed from the same
// float32 P on both paths (a bf16 P would add a rounding to every gradient element, not only to the products'
// operands), and the bf16 copies cost (L × L) roundings per product against its (L × L × e) multiply-adds.
// Measured at (8, 6, 69, 64), 1 thread: the products run at vdpbf16ps's peak (≈ 1 per cycle); they are 2/3 of the
// kernel's time, softmax, packing and the rounding stores the rest.
// The addon is built for baseline x86-64, so these functions carry their own target and run only when the CPU
// reports avx512bf16 (checked once); everywhere else bf16 attention takes the widened path above.
// ---------------------------------------------------------------------------------------------------------------

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)  // as REPTOK_SIMD_CLONES
#define REPTOK_BF16_DOT_BUILT 1
#define REPTOK_BF16_DOT __attribute__((target("arch=x86-64-v4,avx512bf16")))

REPTOK_INLINE Bf16 toBf16(Bf16 x) { return x; }
REPTOK_INLINE Bf16 toBf16(float x) { return fromAcc<Bf16>(x); }
REPTOK_INLINE uint32_t pairOf(Bf16 lo, Bf16 hi) { return uint32_t(lo.bits) | uint32_t(hi.bits) << 16; }

// Packing. An operand X (K, n) along the reduction dimension K becomes ⌈K/2⌉ × n bf16 pairs (X[2kk][w], X[2kk+1][w])
// in 32 bits, the even k in the low half; an odd K's last pair is (X[K-1][w], 0). Stored bf16 is copied, float32
// (P, dS) rounded to nearest. Three layouts, each a contiguous read:
// - pairRows: X (k, w) at x[k·stride + w], two rows interleaved into dst[kk·W + w], zero for n ≤ w < W. The B operand
//   from rows (v, k, q, dO), and the A operand from columns (Pᵀ, dSᵀ: dst read with pair strides (1, n)).
// - pairColumns: X (k, w) at x[w·stride + k], where each pair is already adjacent: dst[kk·W + w], zero for n ≤ w < W.
//   The B operand from columns (kᵀ, vᵀ).
// - pairRowsA: A (m, k) at x[m·stride + k], into dst[m·⌈K/2⌉ + kk]. The A operand from rows (q, dO, P, dS).
template <typename T>
REPTOK_INLINE void pairRows(const T* x, int64_t stride, int64_t K, int64_t n, int64_t W, uint32_t* dst) {
  for (int64_t kk = 0; kk < (K + 1) / 2; kk++) {
    const T *lo = x + 2 * kk * stride, *hi = lo + stride;
    uint32_t* d = dst + kk * W;
    if (2 * kk + 1 < K)
      for (int64_t w = 0; w < n; w++) d[w] = pairOf(toBf16(lo[w]), toBf16(hi[w]));
    else
      for (int64_t w = 0; w < n; w++) d[w] = pairOf(toBf16(lo[w]), Bf16{0});
    std::fill(d + n, d + W, 0u);
  }
}
REPTOK_INLINE void pairColumns(const Bf16* x, int64_t stride, int64_t K, int64_t n, int64_t W, uint32_t* dst) {
  const int64_t K2 = K / 2;
  for (int64_t w = 0; w < n; w++) {
    const Bf16* col = x + w * stride;
    for (int64_t kk = 0; kk < K2; kk++) std::memcpy(dst + kk * W + w, col + 2 * kk, sizeof(uint32_t));  // one load
    if (K % 2) dst[K2 * W + w] = pairOf(col[K - 1], Bf16{0});
  }
  for (int64_t kk = 0; kk < (K + 1) / 2; kk++) std::fill(dst + kk * W + n, dst + (kk + 1) * W, 0u);
}
template <typename T>
REPTOK_INLINE void pairRowsA(const T* x, int64_t stride, int64_t M, int64_t K, uint32_t* dst) {
  const int64_t K2 = K / 2, Kp2 = (K + 1) / 2;
  for (int64_t m = 0; m < M; m++) {
    const T* row = x + m * stride;
    for (int64_t kk = 0; kk < K2; kk++) dst[m * Kp2 + kk] = pairOf(toBf16(row[2 * kk]), toBf16(row[2 * kk + 1]));
    if (K % 2) dst[m * Kp2 + K2] = pairOf(toBf16(row[K - 1]), Bf16{0});
  }
}

// out (M, W) = A · B from packed operands: A's pair (m, kk) at a[m·am + kk·ak], B as pairRows or pairColumns
// packs it, K2 = ⌈K/2⌉, W a multiple of 16. A block of R rows × C vectors of columns keeps R·C accumulators: 8 × 1
// as gemmRows, and the tails of M (4 or 1 rows) take 2 or 4 vectors at once, for enough independent accumulators
// to cover vdpbf16ps's latency (3% of the products' time at 69 rows).
// vdpbf16ps treats bf16 subnormals as zero, far below attention's magnitudes.
template <int R, int C>
REPTOK_BF16_DOT REPTOK_INLINE void dotBlock(const uint32_t* a, int64_t am, int64_t ak, int64_t K2, const uint32_t* b, int64_t W, float* out, int64_t ldo) {
  __m512 acc[R][C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < K2; kk++) {
    __m512bh bv[C];
    for (int c = 0; c < C; c++) bv[c] = (__m512bh)_mm512_loadu_si512(b + kk * W + 16 * c);
    for (int r = 0; r < R; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(a[r * am + kk * ak]));
      for (int c = 0; c < C; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], av, bv[c]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) _mm512_storeu_ps(out + r * ldo + 16 * c, acc[r][c]);
}
template <int R>
REPTOK_BF16_DOT REPTOK_INLINE void dotRows(const uint32_t* a, int64_t am, int64_t ak, int64_t K2, const uint32_t* b, int64_t W, float* out, int64_t ldo) {
  constexpr int C = R >= 8 ? 1 : R >= 4 ? 2 : 4;
  int64_t w = 0;
  for (; w + 16 * C <= W; w += 16 * C) dotBlock<R, C>(a, am, ak, K2, b + w, W, out + w, ldo);
  for (; w < W; w += 16) dotBlock<R, 1>(a, am, ak, K2, b + w, W, out + w, ldo);
}
REPTOK_BF16_DOT REPTOK_INLINE void dotGemm(const uint32_t* a, int64_t am, int64_t ak, int64_t M, int64_t K, const uint32_t* b, int64_t W, float* out,
                                           int64_t ldo) {
  const int64_t K2 = (K + 1) / 2;
  int64_t m = 0;
  for (; m + 8 <= M; m += 8) dotRows<8>(a + m * am, am, ak, K2, b, W, out + m * ldo, ldo);
  for (; m + 4 <= M; m += 4) dotRows<4>(a + m * am, am, ak, K2, b, W, out + m * ldo, ldo);
  for (; m < M; m++) dotRows<1>(a + m * am, am, ak, K2, b, W, out + m * ldo, ldo);
}

// attentionTasksBody<Bf16> with the products on vdpbf16ps.
REPTOK_BF16_DOT void attentionDotTasks(const AttentionArgs<Bf16>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<float>::N), ep = roundUp(e, Simd<float>::N);
  const int64_t e2 = (e + 1) / 2, Lk2 = (Lk + 1) / 2;
  std::vector<uint32_t> qa(Lq * e2), pa(Lq * Lk2), kt(e2 * Lkp), vb(Lk2 * ep);  // A: q, P; B: kᵀ, v
  std::vector<float> scores(a.p ? 0 : Lq * Lkp), o(Lq * ep);
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const Bf16 *q = a.q + b * a.qs[0] + h * a.qs[1], *k = a.k + b * a.ks[0] + h * a.ks[1], *v = a.v + b * a.vs[0] + h * a.vs[1];
    float* s = a.p ? a.p + task * Lq * Lkp : scores.data();
    pairRowsA(q, a.qs[2], Lq, e, qa.data());
    pairColumns(k, a.ks[2], e, Lk, Lkp, kt.data());
    dotGemm(qa.data(), e2, 1, Lq, e, kt.data(), Lkp, s, Lkp);  // q kᵀ (Lq, Lkp)
    for (int64_t i = 0; i < Lq; i++) softmaxRow(s + i * Lkp, Lk, Lkp, a.scale);
    pairRowsA(s, Lkp, Lq, Lk, pa.data());  // P rounded to bf16
    pairRows(v, a.vs[2], Lk, e, ep, vb.data());
    dotGemm(pa.data(), Lk2, 1, Lq, Lk, vb.data(), ep, o.data(), ep);      // P v (Lq, ep)
    unpadRows(o.data(), Lq, e, ep, a.out + (b * Lq * H + h) * e, H * e);  // into (B, Lq, H, e)
  }
}

// attentionGradTasksBody<Bf16> with the products on vdpbf16ps; dS rounded to bf16 as the operand of dQ and dK.
REPTOK_BF16_DOT void attentionDotGradTasks(const AttentionArgs<Bf16>& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, Lq = a.Lq, Lk = a.Lk, e = a.e, Lkp = roundUp(Lk, Simd<float>::N), ep = roundUp(e, Simd<float>::N);
  const int64_t e2 = (e + 1) / 2, Lq2 = (Lq + 1) / 2, Lk2 = (Lk + 1) / 2;
  std::vector<uint32_t> pa(std::max({Lk * Lq2, Lq * e2, Lq * Lk2}));  // A operands: Pᵀ, dO, dS, dSᵀ
  std::vector<uint32_t> pb(std::max({Lq2 * ep, e2 * Lkp, Lk2 * ep}));  // B operands: dO, vᵀ, k, q
  std::vector<float> ds(Lq * Lkp), g(std::max(Lq, Lk) * ep);
  const auto unpad = [&](const float* src, int64_t L, Bf16* dst) { unpadRows(src, L, e, ep, dst, e); };
  for (int64_t task = begin; task < end; task++) {
    const int64_t b = task / H, h = task % H;
    const float* P = a.p + task * Lq * Lkp;
    const Bf16 *q = a.q + b * a.qs[0] + h * a.qs[1], *k = a.k + b * a.ks[0] + h * a.ks[1], *v = a.v + b * a.vs[0] + h * a.vs[1];
    const Bf16* go = a.go + b * a.gos[0] + h * a.gos[1];
    if (a.gv) {
      pairRows(P, Lkp, Lq, Lk, Lk, pa.data());  // Pᵀ rounded to bf16: pair (j, ii) at pa[ii·Lk + j]
      pairRows(go, a.gos[2], Lq, e, ep, pb.data());
      dotGemm(pa.data(), 1, Lk, Lk, Lq, pb.data(), ep, g.data(), ep);  // Pᵀ dO (Lk, ep)
      unpad(g.data(), Lk, a.gv + task * Lk * e);
    }
    if (!a.gq && !a.gk) continue;
    pairRowsA(go, a.gos[2], Lq, e, pa.data());
    pairColumns(v, a.vs[2], e, Lk, Lkp, pb.data());
    dotGemm(pa.data(), e2, 1, Lq, e, pb.data(), Lkp, ds.data(), Lkp);  // dP = dO vᵀ (Lq, Lkp)
    softmaxGradRows(P, ds.data(), Lq, Lk, Lkp, a.scale);
    if (a.gq) {
      pairRowsA(ds.data(), Lkp, Lq, Lk, pa.data());  // dS rounded to bf16
      pairRows(k, a.ks[2], Lk, e, ep, pb.data());
      dotGemm(pa.data(), Lk2, 1, Lq, Lk, pb.data(), ep, g.data(), ep);  // dS k (Lq, ep)
      unpad(g.data(), Lq, a.gq + task * Lq * e);
    }
    if (a.gk) {
      pairRows(ds.data(), Lkp, Lq, Lk, Lk, pa.data());  // dSᵀ rounded to bf16
      pairRows(q, a.qs[2], Lq, e, ep, pb.data());
      dotGemm(pa.data(), 1, Lk, Lk, Lq, pb.data(), ep, g.data(), ep);  // dSᵀ q (Lk, ep)
      unpad(g.data(), Lk, a.gk + task * Lk * e);
    }
  }
}
#endif

// Whether bf16 attention runs the vdpbf16ps path: by default where the CPU has AVX512-BF16; tests switch it off to
// compare both paths on one machine (attentionBf16Dot below).
bool cpuHasBf16Dot() {
#ifdef REPTOK_BF16_DOT_BUILT
  __builtin_cpu_init();  // this runs in a static initializer, possibly before libgcc's own
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}
std::atomic<bool> useBf16Dot{cpuHasBf16Dot()};

// The forward and backward tasks of one call: the vdpbf16ps kernels for bf16 when switched on, else the
// multiversioned SIMD kernels.
template <typename T>
void runAttentionTasks(const AttentionArgs<T>& a, int64_t tasks, bool backward) {
  const bool dot = std::is_same<T, Bf16>::value && useBf16Dot.load();
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
#ifdef REPTOK_BF16_DOT_BUILT
    if constexpr (std::is_same<T, Bf16>::value) {
      if (dot) return backward ? attentionDotGradTasks(a, begin, end) : attentionDotTasks(a, begin, end);
    }
#endif
    backward ? attentionGradTasks(a, begin, end) : attentionTasks(a, begin, end);
  });
}

// Inputs with a non-unit stride along e are copied; (b, h, l) strides are read as they are.
Tensor unitInnerStride(const Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

void setStrides(int64_t (&dst)[3], const Tensor& t) {
  for (int i = 0; i < 3; i++) dst[i] = t.stride(i);
}

// Runs the forward kernel; `p` (B, H, Lq, Lkp) receives the probabilities when defined.
Tensor attentionForward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const Tensor& p) {
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), e = q.size(3);
  Tensor out = at::empty({B, Lq, H, e}, q.options());
  dispatchFloating(q.scalar_type(), [&](auto t) {
    using T = decltype(t);
    AttentionArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), nullptr, ptr<T>(out), ptr<Acc<T>>(p), nullptr, nullptr, nullptr, H, Lq, Lk, e, {}, {}, {}, {}, Acc<T>(scale)};
    setStrides(a.qs, q);
    setStrides(a.ks, k);
    setStrides(a.vs, v);
    runAttentionTasks(a, B * H, false);
  });
  return out;
}

struct AttentionFn : public torch::autograd::Function<AttentionFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
    const at::ScalarType acc = accType(q.scalar_type());
    const int64_t Lkp = roundUp(k.size(2), 64 / int64_t(c10::elementSize(acc)));  // the kernel's padded row length
    Tensor p = at::empty({q.size(0), q.size(1), q.size(2), Lkp}, q.options().dtype(acc));
    Tensor out = attentionForward(q, k, v, scale, p);
    ctx->save_for_backward({q, k, v, p});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    refuseDoubleBackward("reptok::attention");
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &p = saved[3];
    const Tensor go = unitInnerStride(grads[0].permute({0, 2, 1, 3}));  // (B, H, Lq, e) view of the (B, Lq, H, e) gradient
    const int64_t B = q.size(0), H = q.size(1);
    Tensor gq = ctx->needs_input_grad(0) ? at::empty({B, H, q.size(2), q.size(3)}, q.options()) : Tensor();
    Tensor gk = ctx->needs_input_grad(1) ? at::empty({B, H, k.size(2), k.size(3)}, k.options()) : Tensor();
    Tensor gv = ctx->needs_input_grad(2) ? at::empty({B, H, v.size(2), v.size(3)}, v.options()) : Tensor();
    dispatchFloating(q.scalar_type(), [&](auto t) {
      using T = decltype(t);
      AttentionArgs<T> a{ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(go), nullptr, ptr<Acc<T>>(p), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv), H, q.size(2), k.size(2), q.size(3),
                         {}, {}, {}, {}, Acc<T>(ctx->saved_data["scale"].toDouble())};
      setStrides(a.qs, q);
      setStrides(a.ks, k);
      setStrides(a.vs, v);
      setStrides(a.gos, go);
      runAttentionTasks(a, B * H, true);
    });
    return {gq, gk, gv, Tensor()};
  }
};

}  // namespace

Tensor attention(const Tensor& q0, const Tensor& k0, const Tensor& v0, double scale) {
  const char* op = "reptok::attention";
  checkCpuFloat(q0, op, "q");
  TORCH_CHECK(q0.dim() == 4 && k0.dim() == 4 && v0.dim() == 4, op, ": q, k, v must be (B, H, L, e), got ", q0.sizes(), ", ", k0.sizes(), ", ", v0.sizes());
  TORCH_CHECK(k0.sizes() == v0.sizes() && k0.size(0) == q0.size(0) && k0.size(1) == q0.size(1) && k0.size(3) == q0.size(3), op,
              ": k and v must be (B, H, Lk, e) for q ", q0.sizes(), ", got ", k0.sizes(), " and ", v0.sizes());
  TORCH_CHECK(k0.size(2) > 0, op, ": there must be at least one key");
  for (const Tensor* t : {&k0, &v0})
    TORCH_CHECK(t->scalar_type() == q0.scalar_type() && t->device() == q0.device(), op, ": q, k, v must share dtype and device, got q ", q0.scalar_type(),
                ", k ", k0.scalar_type(), ", v ", v0.scalar_type(), " (cast them to one dtype first)");
  const Tensor q = unitInnerStride(q0), k = unitInnerStride(k0), v = unitInnerStride(v0);
  const bool graph = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return graph ? AttentionFn::apply(q, k, v, scale) : attentionForward(q, k, v, scale, Tensor());
}

// attentionBf16Dot([enable]) -> whether bf16 attention runs its products on vdpbf16ps, after switching that on or off
// (a test hook; src/engine/fused.ts). On a CPU without AVX512-BF16 it stays off, and the answer says so.
static Napi::Value attentionBf16Dot(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && !info[0].IsUndefined()) useBf16Dot = toBool(info[0], "enable") && cpuHasBf16Dot();
  return Napi::Boolean::New(info.Env(), useBf16Dot.load());
}

void initAttention(Napi::Env env, Napi::Object exports) { exportFn<attentionBf16Dot>(env, exports, "attentionBf16Dot"); }

}  // namespace reptok
