// SpikeGPT's WKV forward and backward on the CPU. One program per (sequence, block of kBlock channels): the
// recurrence is sequential over steps and independent across channels, so a program walks the steps once and, at
// each step, updates its kBlock channels in one vectorised loop (a row of kBlock contiguous floats of k and v).
// OpenMP spreads the programs over threads. The step math is csrc/include/accelkit/wkv.h.
//
// Backward runs two passes per program: a forward pass that recomputes the carries, accumulates the gradients of
// w and u (they need the carries of steps < t), and keeps y_t, the denominator offset and g_t / den per step; then
// a reverse pass that carries sum_{s>t} e^{(s-1-t) w} g_s / D_s back to each step for the gradients of k and v.
// The per-step values live in gk and gv (overwritten by the reverse pass) and a scratch of kBlock * steps values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// The step math's max() and exp() clamps are float compares; under the default -ftrapping-math GCC keeps each as a
// branch (a compare of a NaN may raise FE_INVALID), which stops the channel loops from vectorising. Nothing here
// reads the floating-point exception flags. The pragma comes before wkv.h, so its step functions get it too.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "accelkit/wkv.h"

// The program bodies (ACCELKIT_ALWAYS_INLINE) must inline into the target("avx2") / target("avx512f") wrappers
// below, or they are compiled once for the baseline ISA and the wrappers just call that copy.

namespace accelkit {
namespace wkv {
namespace {

// 32 float32 channels are four AVX2 or two AVX-512 vectors: independent chains that hide the latency of each
// step's dependent exp/divide, and 128 bytes of each [steps, channels] row per step.
constexpr int64_t kBlock = 32;

template <class T>
struct Grads {
  const T* gy;
  T* gk;
  T* gv;
  T* gw;
  T* gu;
};

template <class T>
ACCELKIT_ALWAYS_INLINE void forward_program(const Problem<T>& pr, T* y, int64_t b, int64_t c0) {
  const int64_t cb = std::min(kBlock, pr.channels - c0);
  T p[kBlock], q[kBlock], o[kBlock];
  for (int64_t i = 0; i < cb; ++i) {
    p[i] = T(0);
    q[i] = T(0);
    o[i] = T(kEmptyOffset);
  }
  const T* w = pr.w + c0;
  const T* u = pr.u + c0;
  for (int64_t t = 0; t < pr.steps; ++t) {
    const int64_t row = (b * pr.steps + t) * pr.channels + c0;
    const T* k = pr.k + row;
    const T* v = pr.v + row;
    T* out = y + row;
#pragma omp simd
    for (int64_t i = 0; i < cb; ++i) {
      Carry<T> c{p[i], q[i], o[i], T(0), T(0)};
      out[i] = output(c, u[i], k[i], v[i]).y;
      advance(c, w[i], k[i], v[i], false);
      p[i] = c.p;
      q[i] = c.q;
      o[i] = c.o;
    }
  }
}

// Pass 1: gw, gu of this block, and per step no -> gk, g / den -> gv, y -> ys.
template <class T>
ACCELKIT_ALWAYS_INLINE void backward_forward_pass(const Problem<T>& pr, const Grads<T>& g, int64_t b, int64_t c0, T* ys) {
  const int64_t cb = std::min(kBlock, pr.channels - c0);
  T p[kBlock], q[kBlock], o[kBlock], dp[kBlock], dq[kBlock];
  // Sums over up to 2^31 steps: float64 accumulators keep them to float32 rounding of the result.
  double gw[kBlock], gu[kBlock];
  for (int64_t i = 0; i < cb; ++i) {
    p[i] = q[i] = dp[i] = dq[i] = T(0);
    o[i] = T(kEmptyOffset);
    gw[i] = gu[i] = 0.0;
  }
  const T* w = pr.w + c0;
  const T* u = pr.u + c0;
  for (int64_t t = 0; t < pr.steps; ++t) {
    const int64_t row = (b * pr.steps + t) * pr.channels + c0;
    const T* k = pr.k + row;
    const T* v = pr.v + row;
    const T* gy = g.gy + row;
    T* gk = g.gk + row;
    T* gv = g.gv + row;
    T* yt = ys + t * kBlock;
#pragma omp simd
    for (int64_t i = 0; i < cb; ++i) {
      Carry<T> c{p[i], q[i], o[i], dp[i], dq[i]};
      const Step<T> s = output(c, u[i], k[i], v[i]);
      const T gd = gy[i] / s.den;
      // dy/du = e^{u+k} (v - y) / D; dy/dw = (a' - y b') / D, both scaled by e^{-no}.
      gu[i] += static_cast<double>(gd * s.e_new * (v[i] - s.y));
      gw[i] += static_cast<double>(gd * s.e_old * (c.dp - s.y * c.dq));
      gk[i] = s.no;
      gv[i] = gd;
      yt[i] = s.y;
      advance(c, w[i], k[i], v[i], true);
      p[i] = c.p;
      q[i] = c.q;
      o[i] = c.o;
      dp[i] = c.dp;
      dq[i] = c.dq;
    }
  }
  for (int64_t i = 0; i < cb; ++i) {
    g.gw[b * pr.channels + c0 + i] = static_cast<T>(gw[i]);
    g.gu[b * pr.channels + c0 + i] = static_cast<T>(gu[i]);
  }
}

// Pass 2, from the last step back: gk, gv from step t's own output and from the later ones.
template <class T>
ACCELKIT_ALWAYS_INLINE void backward_reverse_pass(const Problem<T>& pr, const Grads<T>& g, int64_t b, int64_t c0, const T* ys) {
  const int64_t cb = std::min(kBlock, pr.channels - c0);
  T alpha[kBlock], beta[kBlock], r[kBlock];
  for (int64_t i = 0; i < cb; ++i) {
    alpha[i] = beta[i] = T(0);
    r[i] = T(kEmptyOffset);
  }
  const T* w = pr.w + c0;
  const T* u = pr.u + c0;
  for (int64_t t = pr.steps - 1; t >= 0; --t) {
    const int64_t row = (b * pr.steps + t) * pr.channels + c0;
    const T* k = pr.k + row;
    const T* v = pr.v + row;
    T* gk = g.gk + row;
    T* gv = g.gv + row;
    const T* yt = ys + t * kBlock;
#pragma omp simd
    for (int64_t i = 0; i < cb; ++i) {
      const T no = gk[i];
      const T gd = gv[i];
      const T y = yt[i];
      ReverseCarry<T> rc{alpha[i], beta[i], r[i]};
      T later_k, later_v;
      later_grads(rc, k[i], v[i], later_k, later_v);
      // This step's own output: dy_t/dv_t = e^{u+k}/D, dy_t/dk_t = e^{u+k} (v - y) / D.
      const T own = gd * exp_nonpos(u[i] + k[i] - no);
      gv[i] = own + later_v;
      gk[i] = own * (v[i] - y) + later_k;
      retreat(rc, w[i], gd, y, no);
      alpha[i] = rc.alpha;
      beta[i] = rc.beta;
      r[i] = rc.r;
    }
  }
}

template <class T>
ACCELKIT_ALWAYS_INLINE void backward_program(const Problem<T>& pr, const Grads<T>& g, int64_t b, int64_t c0, std::vector<T>& ys) {
  ys.resize(static_cast<size_t>(pr.steps * kBlock));
  backward_forward_pass(pr, g, b, c0, ys.data());
  backward_reverse_pass(pr, g, b, c0, ys.data());
}

// Each program body on each instruction set: GCC compiles the inlined step math with the caller's target, so the
// channel loops vectorise to AVX2 or AVX-512 without a -march flag. The OpenMP loop stays outside these (GCC
// outlines a parallel region before it inlines).
template <class T>
using ForwardFn = void (*)(const Problem<T>&, T*, int64_t, int64_t);
template <class T>
using BackwardFn = void (*)(const Problem<T>&, const Grads<T>&, int64_t, int64_t, std::vector<T>&);

template <class T>
void forward_generic(const Problem<T>& pr, T* y, int64_t b, int64_t c0) {
  forward_program(pr, y, b, c0);
}
template <class T>
void backward_generic(const Problem<T>& pr, const Grads<T>& g, int64_t b, int64_t c0, std::vector<T>& ys) {
  backward_program(pr, g, b, c0, ys);
}

#if ACCELKIT_X86
template <class T>
__attribute__((target("avx2,fma"))) void forward_avx2(const Problem<T>& pr, T* y, int64_t b, int64_t c0) {
  forward_program(pr, y, b, c0);
}
template <class T>
__attribute__((target("avx2,fma"))) void backward_avx2(const Problem<T>& pr, const Grads<T>& g, int64_t b, int64_t c0,
                                                       std::vector<T>& ys) {
  backward_program(pr, g, b, c0, ys);
}
template <class T>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void forward_avx512(const Problem<T>& pr, T* y, int64_t b,
                                                                         int64_t c0) {
  forward_program(pr, y, b, c0);
}
template <class T>
__attribute__((target("avx512f,avx512dq,avx2,fma"))) void backward_avx512(const Problem<T>& pr, const Grads<T>& g,
                                                                          int64_t b, int64_t c0, std::vector<T>& ys) {
  backward_program(pr, g, b, c0, ys);
}
#endif

enum class Path { generic, avx2, avx512 };

Path best_path() {
#if ACCELKIT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return Path::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Path::avx2;
#endif
  return Path::generic;
}

template <class T>
ForwardFn<T> forward_for(Path path) {
#if ACCELKIT_X86
  if (path == Path::avx512) return forward_avx512<T>;
  if (path == Path::avx2) return forward_avx2<T>;
#endif
  (void)path;
  return forward_generic<T>;
}

template <class T>
BackwardFn<T> backward_for(Path path) {
#if ACCELKIT_X86
  if (path == Path::avx512) return backward_avx512<T>;
  if (path == Path::avx2) return backward_avx2<T>;
#endif
  (void)path;
  return backward_generic<T>;
}

template <class T>
bool problem_ok(const Problem<T>& pr) {
  if (pr.batch < 0 || pr.steps < 0 || pr.channels < 0) return false;
  if (pr.channels > 0 && (!pr.w || !pr.u)) return false;
  if (pr.batch * pr.steps * pr.channels > 0 && (!pr.k || !pr.v)) return false;
  return true;
}

int thread_count(int threads, int64_t programs) {
#ifdef _OPENMP
  if (threads <= 0) threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, programs)));
}

template <class T>
Status run_forward(const Problem<T>& pr, T* y, int threads) {
  if (!problem_ok(pr)) return Status::bad_argument;
  if (pr.batch * pr.steps * pr.channels == 0) return Status::ok;
  if (!y) return Status::bad_argument;
  const int64_t blocks = (pr.channels + kBlock - 1) / kBlock;
  const int64_t programs = pr.batch * blocks;
  const int n = thread_count(threads, programs);
  const ForwardFn<T> fn = forward_for<T>(best_path());
#pragma omp parallel for schedule(dynamic, 1) num_threads(n) if (n > 1)
  for (int64_t p = 0; p < programs; ++p) fn(pr, y, p / blocks, (p % blocks) * kBlock);
  return Status::ok;
}

template <class T>
Status run_backward(const Problem<T>& pr, const Grads<T>& g, int threads) {
  if (!problem_ok(pr)) return Status::bad_argument;
  if (pr.batch * pr.channels > 0 && (!g.gw || !g.gu)) return Status::bad_argument;
  if (pr.batch * pr.channels == 0) return Status::ok;
  if (pr.steps > 0 && (!g.gy || !g.gk || !g.gv)) return Status::bad_argument;
  const int64_t blocks = (pr.channels + kBlock - 1) / kBlock;
  const int64_t programs = pr.batch * blocks;
  const int n = thread_count(threads, programs);
  const BackwardFn<T> fn = backward_for<T>(best_path());
#pragma omp parallel num_threads(n) if (n > 1)
  {
    std::vector<T> ys;
#pragma omp for schedule(dynamic, 1)
    for (int64_t p = 0; p < programs; ++p) fn(pr, g, p / blocks, (p % blocks) * kBlock, ys);
  }
  return Status::ok;
}

}  // namespace

Status forward(const Problem<float>& pr, float* y, int threads) { return run_forward(pr, y, threads); }
Status forward(const Problem<double>& pr, double* y, int threads) { return run_forward(pr, y, threads); }

Status backward(const Problem<float>& pr, const float* gy, float* gk, float* gv, float* gw, float* gu, int threads) {
  return run_backward(pr, Grads<float>{gy, gk, gv, gw, gu}, threads);
}
Status backward(const Problem<double>& pr, const double* gy, double* gk, double* gv, double* gw, double* gu,
                int threads) {
  return run_backward(pr, Grads<double>{gy, gk, gv, gw, gu}, threads);
}

}  // namespace wkv
}  // namespace accelkit
