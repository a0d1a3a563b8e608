// Multi-step spiking neurons on the CPU: forward and surrogate-gradient BPTT over [T, N] buffers, the math of
// csrc/include/accelkit/spiking.h (kernels/spiking/README.md derives it).
//
// Neurons are independent, so OpenMP splits N into chunks of W neurons; a chunk keeps its membranes in a local
// array and walks T sequentially, and the loop over the chunk's neurons is a `#pragma omp simd` loop with the
// reset mode, charge equation and surrogate as template parameters (no branches, so it vectorises). W is chosen so
// that a chunk's row of one step is a 4 KiB page of fp32 (the unit a hardware prefetcher streams).
//
// The backward does not need a saved h_seq: it recomputes H for its chunk from x into a per-thread [T, W] scratch
// (L2-resident) and then runs the reverse recursion, so forward + backward move 5 T N elements (x and spikes
// forward; x, grad spikes and grad x backward), the minimum. Given h_seq (from a forward that stored it), it reads
// h_seq instead of recomputing; the benchmark (bench/lif_cpu.py) measures both.
#include <algorithm>
#include <cstring>
#include <vector>

#include "accelkit/spiking.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if ACCELKIT_X86
#define ACCELKIT_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ACCELKIT_TARGET_AVX2
#endif

namespace accelkit {
namespace spiking {
namespace {

// 1024 fp32 neurons = one 4 KiB page per step row; the backward scratch is T x W, so W shrinks for long sequences
// to keep it near 128 KiB (L2), never below 64 neurons (4 AVX2 vectors of fp64).
constexpr int64_t kMaxChunk = 1024;
constexpr int64_t kMinChunk = 64;
constexpr int64_t kScratchElems = 32 * 1024;

int64_t chunk_width(int64_t t) {
  const int64_t w = t > 0 ? kScratchElems / t : kMaxChunk;
  return std::max(kMinChunk, std::min(kMaxChunk, w / 16 * 16));
}

// exp(y) for fp32 in vectorisable form: y = k ln2 + r with |r| <= ln2 / 2, exp(r) by its degree-7 Taylor polynomial
// (truncation error r^8 / 8! < 3e-8 relative), 2^k by building the exponent bits, k kept in [-126, 127] so 2^k is a
// normal float.
ACCELKIT_ALWAYS_INLINE float exp_f32(float y) {
  // Round to nearest by adding and subtracting 1.5 * 2^23, which pushes the fraction bits out of the significand.
  // The clamp is on the integer k (a float clamp would not vectorise, see reset() in spiking.h): past it the result
  // is 2^-126 p or 2^127 p instead of 0 or a larger number, where alpha e / (1 + e)^2 is 0 to fp32 precision either
  // way (|alpha x| >= 87).
  const float fk = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  int k = static_cast<int>(fk);
  k = k < -126 ? -126 : k;
  k = k > 127 ? 127 : k;
  const float r = (y - fk * 0.693145751953125f) - fk * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int bits = (k + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

ACCELKIT_ALWAYS_INLINE float exp_s(float y) { return exp_f32(y); }
ACCELKIT_ALWAYS_INLINE double exp_s(double y) { return std::exp(y); }

template <typename S, int Surr>
ACCELKIT_ALWAYS_INLINE S surrogate(S x, S alpha) {
  if constexpr (Surr == kSigmoid) {
    return sigmoid_grad_from_exp(exp_s(-alpha * x), alpha);
  } else if constexpr (Surr == kAtan) {
    return atan_grad(x, alpha);
  } else {
    return triangle_grad(x, alpha);
  }
}

template <typename S>
struct Consts {
  S d, vr, vth, v_reset, alpha, keep, dhdv, dhdx;
  explicit Consts(const NeuronParams& p)
      : d(static_cast<S>(p.decay)),
        vr(p.soft_reset ? S(0) : static_cast<S>(p.v_reset)),
        vth(static_cast<S>(p.v_threshold)),
        v_reset(p.soft_reset ? S(0) : static_cast<S>(p.v_reset)),
        alpha(static_cast<S>(p.alpha)),
        keep(p.detach_reset ? S(0) : S(1)),
        dhdv(S(1) - static_cast<S>(p.decay)),
        dhdx(p.decay_input ? static_cast<S>(p.decay) : S(1)) {}
};

// One step of a chunk: charge H, fire S (returned), reset V. Scalars only: an aggregate local in an `omp simd`
// loop becomes a per-lane array and the loop no longer vectorises (GCC 12).
template <typename S, bool DI, bool Soft>
ACCELKIT_ALWAYS_INLINE S step(S* v, S x, S* h, const Consts<S>& c) {
  const S hh = charge(*v, x, c.d, c.vr, DI);
  const int fired = hh >= c.vth;
  *v = reset(hh, fired, c.vth, c.v_reset, Soft);
  *h = hh;
  return static_cast<S>(fired);
}

template <typename S>
void init_membrane(S* v, const S* v_init, int64_t n0, int64_t w, S vr) {
  for (int64_t i = 0; i < w; ++i) v[i] = v_init ? v_init[n0 + i] : vr;
}

template <typename S, bool DI, bool Soft>
ACCELKIT_ALWAYS_INLINE void forward_chunk(const ForwardArgs<S>& a, const Consts<S>& c, int64_t n0, int64_t w) {
  S v[kMaxChunk], h[kMaxChunk];
  init_membrane(v, a.v_init, n0, w, c.vr);
  for (int64_t t = 0; t < a.t; ++t) {
    const int64_t row = t * a.n + n0;
    const S* x = a.x + row;
    S* spikes = a.spikes + row;
#pragma omp simd
    for (int64_t i = 0; i < w; ++i) spikes[i] = step<S, DI, Soft>(v + i, x[i], h + i, c);
    if (a.v_seq) std::memcpy(a.v_seq + row, v, w * sizeof(S));
    if (a.h_seq) std::memcpy(a.h_seq + row, h, w * sizeof(S));
  }
  if (a.v_last) std::memcpy(a.v_last + n0, v, w * sizeof(S));
}

// The reverse recursion of one chunk; hs is H as [T, W] rows of stride hs_stride (the scratch or h_seq itself).
// Adds the chunk's share of d loss / d decay to a.grad_decay[0] when that is set.
template <typename S, bool DI, bool Soft, int Surr>
ACCELKIT_ALWAYS_INLINE void backward_chunk(const BackwardArgs<S>& a, const Consts<S>& c, const S* hs,
                                             int64_t hs_stride, const S* zeros, int64_t n0, int64_t w) {
  // carry = dL/dH[t+1] * dH[t+1]/dV[t], the gradient reaching V[t] through the next step.
  S carry[kMaxChunk], g_h[kMaxChunk];
  for (int64_t i = 0; i < w; ++i) carry[i] = a.grad_v_last ? a.grad_v_last[n0 + i] : S(0);
  const bool want_decay = a.grad_decay != nullptr;
  for (int64_t t = a.t - 1; t >= 0; --t) {
    const int64_t row = t * a.n + n0;
    const S* h = hs + t * hs_stride;
    const S* gs = a.grad_spikes ? a.grad_spikes + row : zeros;
    const S* gv = a.grad_v_seq ? a.grad_v_seq + row : zeros;
    S* gx = a.grad_x + row;
#pragma omp simd
    for (int64_t i = 0; i < w; ++i) {
      const S s = static_cast<S>(static_cast<int>(h[i] >= c.vth));
      const S sg = surrogate<S, Surr>(h[i] - c.vth, c.alpha);
      const S dvdh = reset_grad(h[i], s, sg, c.vth, c.v_reset, c.keep, Soft);
      const S gh = (gv[i] + carry[i]) * dvdh + gs[i] * sg;
      gx[i] = gh * c.dhdx;
      carry[i] = gh * c.dhdv;
      g_h[i] = gh;
    }
    if (want_decay) {
      // Kept out of the main loop: V[t-1] is the reset of H[t-1] (or v_init), so it needs no storage.
      const S* x = a.x + row;
      const S* hp = t > 0 ? hs + (t - 1) * hs_stride : nullptr;
      double part = 0.0;
      for (int64_t i = 0; i < w; ++i) {
        S v_prev = a.v_init ? a.v_init[n0 + i] : c.vr;
        if (hp) v_prev = reset(hp[i], hp[i] >= c.vth, c.vth, c.v_reset, Soft);
        part += static_cast<double>(g_h[i] * charge_grad_decay(v_prev, x[i], c.vr, DI));
      }
      a.grad_decay[0] += part;  // the chunk's own slot (run_backward)
    }
  }
  if (a.grad_v_init)
    for (int64_t i = 0; i < w; ++i) a.grad_v_init[n0 + i] = carry[i];
}

template <typename S, bool DI, bool Soft, int Surr>
ACCELKIT_ALWAYS_INLINE void backward_chunk_full(const BackwardArgs<S>& a, const Consts<S>& c, S* scratch,
                                                const S* zeros, int64_t n0, int64_t w) {
  if (a.h_seq) {
    backward_chunk<S, DI, Soft, Surr>(a, c, a.h_seq + n0, a.n, zeros, n0, w);
    return;
  }
  S v[kMaxChunk];
  init_membrane(v, a.v_init, n0, w, c.vr);
  for (int64_t t = 0; t < a.t; ++t) {
    const S* x = a.x + t * a.n + n0;
    S* h = scratch + t * w;
#pragma omp simd
    for (int64_t i = 0; i < w; ++i) step<S, DI, Soft>(v + i, x[i], h + i, c);
  }
  backward_chunk<S, DI, Soft, Surr>(a, c, scratch, w, zeros, n0, w);
}

// One noinline entry per (instruction set, flags): the always-inline bodies above compile once per target.
template <typename S, bool DI, bool Soft>
ACCELKIT_NOINLINE void fwd_scalar(const ForwardArgs<S>& a, const Consts<S>& c, int64_t n0, int64_t w) {
  forward_chunk<S, DI, Soft>(a, c, n0, w);
}
template <typename S, bool DI, bool Soft>
ACCELKIT_NOINLINE ACCELKIT_TARGET_AVX2 void fwd_avx2(const ForwardArgs<S>& a, const Consts<S>& c, int64_t n0,
                                                      int64_t w) {
  forward_chunk<S, DI, Soft>(a, c, n0, w);
}
template <typename S, bool DI, bool Soft, int Surr>
ACCELKIT_NOINLINE void bwd_scalar(const BackwardArgs<S>& a, const Consts<S>& c, S* scratch, const S* zeros,
                                  int64_t n0, int64_t w) {
  backward_chunk_full<S, DI, Soft, Surr>(a, c, scratch, zeros, n0, w);
}
template <typename S, bool DI, bool Soft, int Surr>
ACCELKIT_NOINLINE ACCELKIT_TARGET_AVX2 void bwd_avx2(const BackwardArgs<S>& a, const Consts<S>& c, S* scratch,
                                                      const S* zeros, int64_t n0, int64_t w) {
  backward_chunk_full<S, DI, Soft, Surr>(a, c, scratch, zeros, n0, w);
}

template <typename S>
using FwdFn = void (*)(const ForwardArgs<S>&, const Consts<S>&, int64_t, int64_t);
template <typename S>
using BwdFn = void (*)(const BackwardArgs<S>&, const Consts<S>&, S*, const S*, int64_t, int64_t);

template <typename S, bool DI, bool Soft>
FwdFn<S> pick_fwd(bool avx2) {
  return avx2 ? fwd_avx2<S, DI, Soft> : fwd_scalar<S, DI, Soft>;
}

template <typename S, bool DI, bool Soft, int Surr>
BwdFn<S> pick_bwd(bool avx2) {
  return avx2 ? bwd_avx2<S, DI, Soft, Surr> : bwd_scalar<S, DI, Soft, Surr>;
}

template <typename S, bool DI, bool Soft>
BwdFn<S> pick_bwd_surrogate(int surrogate, bool avx2) {
  switch (surrogate) {
    case kSigmoid:
      return pick_bwd<S, DI, Soft, kSigmoid>(avx2);
    case kAtan:
      return pick_bwd<S, DI, Soft, kAtan>(avx2);
    default:
      return pick_bwd<S, DI, Soft, kTriangle>(avx2);
  }
}

bool valid_params(const NeuronParams& p) {
  return p.surrogate >= kSigmoid && p.surrogate <= kTriangle && p.alpha > 0.0 && std::isfinite(p.alpha) &&
         std::isfinite(p.decay) && std::isfinite(p.v_threshold) && std::isfinite(p.v_reset);
}

int64_t num_chunks(int64_t n, int64_t w) { return (n + w - 1) / w; }

// Below 2^16 elements (256 KiB of fp32) a call takes microseconds and waking a second thread costs more than it
// saves; on a shared host the wait for a descheduled thread at the region's barrier can take milliseconds.
constexpr int64_t kParallelMinElems = int64_t{1} << 16;

int thread_count(int threads, int64_t t, int64_t n) {
  if (t * n < kParallelMinElems) return 1;
  return threads > 0 ? threads : max_threads();
}

template <typename S>
Status run_forward(const ForwardArgs<S>& a, const NeuronParams& p, Isa isa, int threads) {
  if (!valid_params(p) || a.t < 0 || a.n < 0 || (a.t * a.n > 0 && (!a.x || !a.spikes))) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  if (a.n == 0) return Status::ok;
  const bool avx2 = isa != Isa::scalar;
  FwdFn<S> fn = p.decay_input ? (p.soft_reset ? pick_fwd<S, true, true>(avx2) : pick_fwd<S, true, false>(avx2))
                              : (p.soft_reset ? pick_fwd<S, false, true>(avx2) : pick_fwd<S, false, false>(avx2));
  const Consts<S> c(p);
  const int64_t w = kMaxChunk;
  const int64_t chunks = num_chunks(a.n, w);
  const int nt = thread_count(threads, a.t, a.n);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const int64_t n0 = ci * w;
    fn(a, c, n0, std::min(w, a.n - n0));
  }
  return Status::ok;
}

template <typename S>
Status run_backward(const BackwardArgs<S>& a, const NeuronParams& p, Isa isa, int threads) {
  if (!valid_params(p) || a.t < 0 || a.n < 0) return Status::bad_argument;
  if (a.t * a.n > 0 && (!a.x || !a.grad_x)) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  if (a.grad_decay) a.grad_decay[0] = 0.0;
  if (a.n == 0) return Status::ok;
  if (a.t == 0) {
    if (a.grad_v_init)
      for (int64_t i = 0; i < a.n; ++i) a.grad_v_init[i] = a.grad_v_last ? a.grad_v_last[i] : S(0);
    return Status::ok;
  }
  const bool avx2 = isa != Isa::scalar;
  BwdFn<S> fn = p.decay_input
                    ? (p.soft_reset ? pick_bwd_surrogate<S, true, true>(p.surrogate, avx2)
                                    : pick_bwd_surrogate<S, true, false>(p.surrogate, avx2))
                    : (p.soft_reset ? pick_bwd_surrogate<S, false, true>(p.surrogate, avx2)
                                    : pick_bwd_surrogate<S, false, false>(p.surrogate, avx2));
  const Consts<S> c(p);
  const int64_t w = chunk_width(a.t);
  const int64_t chunks = num_chunks(a.n, w);
  // Each chunk sums its decay gradient into its own slot, and the slots are added in chunk order afterwards, so the
  // result does not depend on the thread count.
  std::vector<double> parts(a.grad_decay ? chunks : 0, 0.0);
  const int nt = thread_count(threads, a.t, a.n);
#pragma omp parallel num_threads(nt)
  {
    std::vector<S> scratch(a.h_seq ? 0 : a.t * w);
    std::vector<S> zeros(w, S(0));
#pragma omp for schedule(static)
    for (int64_t ci = 0; ci < chunks; ++ci) {
      const int64_t n0 = ci * w;
      BackwardArgs<S> local = a;
      if (a.grad_decay) local.grad_decay = &parts[ci];
      fn(local, c, scratch.data(), zeros.data(), n0, std::min(w, a.n - n0));
    }
  }
  if (a.grad_decay) {
    double total = 0.0;
    for (double part : parts) total += part;
    a.grad_decay[0] = total;
  }
  return Status::ok;
}

}  // namespace

bool isa_supported(Isa isa) {
  if (isa == Isa::scalar) return true;
#if ACCELKIT_X86
  if (isa == Isa::avx2) return cpu_features().avx2;
#endif
  return false;
}

Status forward(const ForwardArgs<float>& args, const NeuronParams& p, Isa isa, int threads) {
  return run_forward(args, p, isa, threads);
}
Status forward(const ForwardArgs<double>& args, const NeuronParams& p, Isa isa, int threads) {
  return run_forward(args, p, isa, threads);
}
Status backward(const BackwardArgs<float>& args, const NeuronParams& p, Isa isa, int threads) {
  return run_backward(args, p, isa, threads);
}
Status backward(const BackwardArgs<double>& args, const NeuronParams& p, Isa isa, int threads) {
  return run_backward(args, p, isa, threads);
}

}  // namespace spiking
}  // namespace accelkit
