// SpikeGPT's WKV recurrence (the RWKV-4 time mix), one (batch, channel) pair at a time: the step math shared by the
// C++ CPU kernel (csrc/wkv.cpp) and any CUDA C kernel. kernels/wkv/reference.py is the float64 oracle of every
// function here and kernels/wkv/README.md derives them.
//
// With w = -exp(time_decay) and u = time_first per channel,
//   y_t = (sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (sum_{i<t} e^{(t-1-i) w + k_i} + e^{u + k_t}).
// Both sums are carried as (p, q) times e^o, with o the largest exponent seen, so every exp() below takes an
// argument <= 0 (up to rounding) and nothing overflows whatever the sizes of k, u and w.
//
// The header is framework-free: no torch, no pybind11, nothing NVRTC cannot compile.
#pragma once

#include "accelkit/attention.h"

namespace accelkit {
namespace wkv {

// The offset of an empty sum, as the reference kernel: finite, so (o - max(o, x)) is never -inf - (-inf).
constexpr float kEmptyOffset = -1e38f;

// e^x for x <= 0 (a rounding-sized positive x works too): float uses attention::exp_neg's Cody-Waite reduction
// and degree-7 polynomial, written with selects instead of an early return so a loop over channels vectorises.
ACCELKIT_HD_INLINE float exp_nonpos(float x) {
  const bool live = x >= attention::kExpFloor;  // false for NaN, -inf and arguments under the floor
  const float c = live ? x : attention::kExpFloor;
  const float n = (c * attention::kLog2e + attention::kRoundMagic) - attention::kRoundMagic;
  const float r = (c - n * attention::kLn2Hi) - n * attention::kLn2Lo;
  const float poly =
      1.0f + r * (1.0f + r * (attention::kExpC2 +
                              r * (attention::kExpC3 +
                                   r * (attention::kExpC4 +
                                        r * (attention::kExpC5 + r * (attention::kExpC6 + r * attention::kExpC7))))));
  const float e = poly * attention::bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  // 0 where not live: a NaN argument comes from a NaN input, which reaches the output through the other operand.
  return live ? e : 0.0f;
}

ACCELKIT_HD_INLINE double exp_nonpos(double x) {
#if defined(__CUDACC__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

// max(a, b), and e^{a - max}, e^{b - max} through one exp: one of the two is e^0 = 1 exactly.
template <class T>
ACCELKIT_HD_INLINE T fold_max(T a, T b, T& ea, T& eb) {
  const T d = a - b;
  const bool a_wins = d >= T(0);
  const T e = exp_nonpos(a_wins ? -d : d);
  ea = a_wins ? T(1) : e;
  eb = a_wins ? e : T(1);
  return a_wins ? a : b;
}

// The running sums of one channel: a = p e^o (weighted values) and b = q e^o (weights); for the gradient of w also
// a' = dp e^o and b' = dq e^o, the same sums with each term i < t weighted by its age (t - 1 - i).
template <class T>
struct Carry {
  T p, q, o, dp, dq;
};

template <class T>
ACCELKIT_HD_INLINE Carry<T> empty_carry() {
  return Carry<T>{T(0), T(0), T(kEmptyOffset), T(0), T(0)};
}

// The quantities of step t that backward needs: y_t, and the denominator D_t = e^{no} * den.
template <class T>
struct Step {
  T y, no, den, e_old, e_new;
};

// Output of step t from the carry of steps < t: no = max(o, u + k) scales both terms of the ratio.
template <class T>
ACCELKIT_HD_INLINE Step<T> output(const Carry<T>& c, T u, T k, T v) {
  T e_old, e_new;
  const T no = fold_max(c.o, u + k, e_old, e_new);
  const T den = e_old * c.q + e_new;
  return Step<T>{(e_old * c.p + e_new * v) / den, no, den, e_old, e_new};
}

// Folds step t into the carry: a_{t+1} = e^w a_t + e^{k_t} v_t, b likewise, a'_{t+1} = e^w (a'_t + a_t).
template <class T>
ACCELKIT_HD_INLINE void advance(Carry<T>& c, T w, T k, T v, bool ages) {
  T e_old, e_new;
  const T no = fold_max(w + c.o, k, e_old, e_new);
  if (ages) {
    c.dp = e_old * (c.dp + c.p);
    c.dq = e_old * (c.dq + c.q);
  }
  c.p = e_old * c.p + e_new * v;
  c.q = e_old * c.q + e_new;
  c.o = no;
}

// The reverse carry of backward: A_t = sum_{s>t} e^{(s-1-t) w} g_s / D_s = alpha e^r and B_t the same with g_s y_s.
template <class T>
struct ReverseCarry {
  T alpha, beta, r;
};

template <class T>
ACCELKIT_HD_INLINE ReverseCarry<T> empty_reverse() {
  return ReverseCarry<T>{T(0), T(0), T(kEmptyOffset)};
}

// Gradients of k_t and v_t through the later outputs (s > t): y_s depends on k_t, v_t through the term
// e^{(s-1-t) w + k_t} v_t of its numerator and e^{(s-1-t) w + k_t} of its denominator. k + r <= 0 because the
// forward offset o_s >= (s-1-t) w + k_t.
template <class T>
ACCELKIT_HD_INLINE void later_grads(const ReverseCarry<T>& rc, T k, T v, T& gk, T& gv) {
  const T e = exp_nonpos(k + rc.r);
  gv = rc.alpha * e;
  gk = (v * rc.alpha - rc.beta) * e;
}

// Folds step t into the reverse carry: A_{t-1} = e^w A_t + g_t / D_t with g_t / D_t = (g_t / den) e^{-no}.
template <class T>
ACCELKIT_HD_INLINE void retreat(ReverseCarry<T>& rc, T w, T g_over_den, T y, T no) {
  T e_old, e_new;
  const T nr = fold_max(w + rc.r, -no, e_old, e_new);
  rc.alpha = e_old * rc.alpha + e_new * g_over_den;
  rc.beta = e_old * rc.beta + e_new * g_over_den * y;
  rc.r = nr;
}

#if !defined(__CUDACC_RTC__)
enum class Status : int { ok = 0, bad_argument = 1 };

// k, v, y, gy, gk, gv: [batch, steps, channels] contiguous; w, u: [channels]; gw, gu: [batch, channels] (the
// per-sequence parts; the caller sums over the batch). threads <= 0: the OpenMP default.
template <class T>
struct Problem {
  int64_t batch, steps, channels;
  const T* w;
  const T* u;
  const T* k;
  const T* v;
};

Status forward(const Problem<float>& pr, float* y, int threads);
Status forward(const Problem<double>& pr, double* y, int threads);
Status backward(const Problem<float>& pr, const float* gy, float* gk, float* gv, float* gw, float* gu, int threads);
Status backward(const Problem<double>& pr, const double* gy, double* gk, double* gv, double* gw, double* gu,
                int threads);
#endif

}  // namespace wkv
}  // namespace accelkit
