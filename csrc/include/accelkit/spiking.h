// Membrane math of the multi-step spiking neurons (IF, LIF, PLIF), shared by the C++ CPU kernels
// (csrc/spiking.cpp) and the CUDA C kernels (csrc/cuda/spiking.cu). kernels/spiking/reference.py is the float64
// oracle and kernels/spiking/README.md derives the backward.
//
// One charge equation covers the three neurons, with d the decay (1/tau for LIF, sigmoid(w) for PLIF, 0 for IF):
//   decay_input:     H = V + d (X - (V - vr))
//   not decay_input: H = V - d (V - vr) + X        (IF is this with d = 0: H = V + X exactly)
// vr is v_reset for a hard reset and 0 for a soft reset. Fire S = (H >= v_threshold); reset V = S ? v_reset : H
// (hard) or V = H - v_threshold S (soft).
//
// The header is framework-free (no torch, no pybind11, nothing NVRTC cannot compile).
#pragma once

#include "accelkit/portable.h"

namespace accelkit {
namespace spiking {

// Surrogate ids, in the order of kernels/spiking/reference.py SURROGATES.
enum Surrogate : int { kSigmoid = 0, kAtan = 1, kTriangle = 2 };

// pi / 2, for ATan's sg(x) = alpha / (2 (1 + (pi/2 alpha x)^2)).
constexpr double kHalfPi = 1.57079632679489661923;

struct NeuronParams {
  double decay = 0.5;       // d
  bool decay_input = true;  // which charge equation
  double v_threshold = 1.0;
  bool soft_reset = false;  // v_reset None
  double v_reset = 0.0;     // ignored (treated as 0) when soft_reset
  int surrogate = kSigmoid;
  double alpha = 4.0;
  bool detach_reset = false;
};

template <typename S>
ACCELKIT_HD S charge(S v, S x, S d, S vr, bool decay_input) {
  return decay_input ? v + d * (x - (v - vr)) : v - d * (v - vr) + x;
}

// dH/dd at this step (PLIF's decay gradient), from the membrane before the charge.
template <typename S>
ACCELKIT_HD S charge_grad_decay(S v_prev, S x, S vr, bool decay_input) {
  return decay_input ? x - (v_prev - vr) : vr - v_prev;
}

// fired is 0 or 1. The soft reset multiplies by the spike as a converted integer and the hard reset selects: both
// equal SpikingJelly's H - v_th S and H (1 - S) + v_reset S exactly, and GCC under its default -ftrapping-math
// vectorises these forms but not a float compare feeding float arithmetic.
template <typename S>
ACCELKIT_HD S reset(S h, int fired, S v_threshold, S v_reset, bool soft) {
  return soft ? h - v_threshold * static_cast<S>(fired) : (fired ? v_reset : h);
}

// d V / d H of the reset, with sg the surrogate derivative at H - v_threshold and keep = 0 when detach_reset.
template <typename S>
ACCELKIT_HD S reset_grad(S h, S spike, S sg, S v_threshold, S v_reset, S keep, bool soft) {
  return soft ? S(1) - v_threshold * sg * keep : (S(1) - spike) + (v_reset - h) * sg * keep;
}

// The surrogate derivatives with `exp_fn` the exponential the caller trusts (libm, CUDA's expf or a vector one).
template <typename S>
ACCELKIT_HD S sigmoid_grad_from_exp(S e, S alpha) {
  // e = exp(-alpha x): sig = 1 / (1 + e), sig (1 - sig) = e / (1 + e)^2.
  const S denom = S(1) + e;
  return alpha * e / (denom * denom);
}

template <typename S>
ACCELKIT_HD S atan_grad(S x, S alpha) {
  const S u = S(kHalfPi) * alpha * x;
  return alpha / (S(2) * (S(1) + u * u));
}

// alpha - alpha^2 |x| is <= 0 exactly where |x| >= 1 / alpha, so clamping it at 0 is the triangle.
template <typename S>
ACCELKIT_HD S triangle_grad(S x, S alpha) {
  const S g = alpha - alpha * alpha * (x < S(0) ? -x : x);
  return g > S(0) ? g : S(0);
}

}  // namespace spiking
}  // namespace accelkit

#if !defined(__CUDACC__)
#include "accelkit/cpu_features.h"

// The CPU kernels (csrc/spiking.cpp). Contiguous [T, N] buffers, plain pointers; a Status instead of exceptions, so
// the bindings decide how errors surface. Optional buffers are nullptr.
namespace accelkit {
namespace spiking {

enum class Status : int { ok = 0, bad_argument = 1, unsupported_isa = 2 };

template <typename S>
struct ForwardArgs {
  const S* x = nullptr;       // [T, N]
  const S* v_init = nullptr;  // [N] or nullptr (every neuron starts at vr)
  S* spikes = nullptr;        // [T, N]
  S* v_seq = nullptr;         // [T, N] or nullptr
  S* v_last = nullptr;        // [N] or nullptr
  S* h_seq = nullptr;         // [T, N] or nullptr: saved for a backward that does not recompute
  int64_t t = 0, n = 0;
};

template <typename S>
struct BackwardArgs {
  const S* x = nullptr;          // [T, N]; the backward recomputes H from it when h_seq is nullptr
  const S* h_seq = nullptr;      // [T, N] or nullptr
  const S* v_init = nullptr;     // [N] or nullptr
  const S* grad_spikes = nullptr;  // [T, N] or nullptr (zero)
  const S* grad_v_seq = nullptr;   // [T, N] or nullptr (zero)
  const S* grad_v_last = nullptr;  // [N] or nullptr (zero): the gradient of the last membrane only
  S* grad_x = nullptr;           // [T, N]
  S* grad_v_init = nullptr;      // [N] or nullptr
  double* grad_decay = nullptr;  // one double, or nullptr when the decay needs no gradient
  int64_t t = 0, n = 0;
};

// avx2 (with FMA) and scalar paths; the neuron loops are memory-bound, so AVX-512 buys nothing over AVX2.
bool isa_supported(Isa isa);
inline Isa best_isa() { return accelkit::best_isa(isa_supported); }

// threads <= 0: OpenMP's default.
Status forward(const ForwardArgs<float>& args, const NeuronParams& p, Isa isa, int threads);
Status forward(const ForwardArgs<double>& args, const NeuronParams& p, Isa isa, int threads);
Status backward(const BackwardArgs<float>& args, const NeuronParams& p, Isa isa, int threads);
Status backward(const BackwardArgs<double>& args, const NeuronParams& p, Isa isa, int threads);

}  // namespace spiking
}  // namespace accelkit
#endif
