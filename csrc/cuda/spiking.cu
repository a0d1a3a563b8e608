// CUDA C kernels for the multi-step spiking neurons (IF, LIF, PLIF): forward and surrogate-gradient BPTT over
// x [T, N]. CuPy loads them by their extern "C" names (kernels/spiking/cuda.py); the membrane math comes from
// accelkit/spiking.h, shared with the CPU kernels.
//
// One thread per neuron walks T (the recursion is over time; consecutive threads read consecutive neurons of a
// step, so every load and store is coalesced). The forward stores h_seq for the backward. Flags are run-time ints:
// every thread of a launch takes the same branch, so they cost no divergence. The decay is read from device memory
// (params[0]) so PLIF's sigmoid(w) never goes through the host; PLIF's decay gradient is one partial sum per block
// (a shared-memory tree), added up by the launcher.
#include "accelkit/spiking.h"

namespace {

using accelkit::spiking::charge;
using accelkit::spiking::charge_grad_decay;
using accelkit::spiking::reset;
using accelkit::spiking::reset_grad;

constexpr int kThreads = 256;  // must match _THREADS in kernels/spiking/cuda.py

struct Flags {
  int has_v_init, decay_input, soft, store_v, store_h;
};

__device__ __forceinline__ float exp_of(float x) { return __expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }

template <typename S>
__device__ S surrogate(S x, S alpha, int kind) {
  if (kind == accelkit::spiking::kSigmoid) return accelkit::spiking::sigmoid_grad_from_exp(exp_of(-alpha * x), alpha);
  if (kind == accelkit::spiking::kAtan) return accelkit::spiking::atan_grad(x, alpha);
  return accelkit::spiking::triangle_grad(x, alpha);
}

// params: [decay, v_threshold, v_reset (0 for the soft reset), alpha].
template <typename S>
__device__ void forward(const S* x, const S* v_init, const S* params, S* spikes, S* v_seq, S* v_last, S* h_seq,
                        long long steps, long long n, Flags f) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const S d = params[0], vth = params[1], vr = params[2];
  S v = f.has_v_init ? v_init[i] : vr;
  for (long long t = 0; t < steps; ++t) {
    const long long p = t * n + i;
    const S h = charge(v, x[p], d, vr, f.decay_input != 0);
    const int fired = h >= vth;
    v = reset(h, fired, vth, vr, f.soft != 0);
    spikes[p] = static_cast<S>(fired);
    if (f.store_v) v_seq[p] = v;
    if (f.store_h) h_seq[p] = h;
  }
  v_last[i] = v;
}

struct BwdFlags {
  int has_v_init, has_grad_s, has_grad_v, has_grad_v_last, want_decay, decay_input, soft, surrogate, detach_reset;
};

template <typename S>
__device__ void backward(const S* x, const S* h_seq, const S* v_init, const S* grad_s, const S* grad_v,
                         const S* grad_v_last, const S* params, S* grad_x, S* grad_v_init, double* grad_decay,
                         long long steps, long long n, BwdFlags f) {
  __shared__ double partial[kThreads];
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool live = i < n;
  const S d = params[0], vth = params[1], vr = params[2], alpha = params[3];
  const S keep = f.detach_reset ? S(0) : S(1);
  const S dhdx = f.decay_input ? d : S(1);
  double acc = 0.0;
  if (live) {
    S carry = f.has_grad_v_last ? grad_v_last[i] : S(0);
    const S v0 = f.has_v_init ? v_init[i] : vr;
    for (long long t = steps - 1; t >= 0; --t) {
      const long long p = t * n + i;
      const S h = h_seq[p];
      const S s = static_cast<S>(static_cast<int>(h >= vth));
      const S sg = surrogate(h - vth, alpha, f.surrogate);
      const S dvdh = reset_grad(h, s, sg, vth, vr, keep, f.soft != 0);
      const S gh = ((f.has_grad_v ? grad_v[p] : S(0)) + carry) * dvdh + (f.has_grad_s ? grad_s[p] * sg : S(0));
      grad_x[p] = gh * dhdx;
      carry = gh * (S(1) - d);
      if (f.want_decay) {
        const S hp = t > 0 ? h_seq[p - n] : S(0);
        const S v_prev = t > 0 ? reset(hp, static_cast<int>(hp >= vth), vth, vr, f.soft != 0) : v0;
        acc += static_cast<double>(gh * charge_grad_decay(v_prev, x[p], vr, f.decay_input != 0));
      }
    }
    grad_v_init[i] = carry;
  }
  if (!f.want_decay) return;
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_decay[blockIdx.x] = partial[0];
}

}  // namespace

#define ACCELKIT_SPIKING_KERNELS(S, SUFFIX)                                                                         \
  extern "C" __global__ void __launch_bounds__(kThreads)                                                            \
      accelkit_spiking_fwd_##SUFFIX(const S* x, const S* v_init, const S* params, S* spikes, S* v_seq, S* v_last,   \
                                    S* h_seq, long long steps, long long n, int has_v_init, int decay_input,        \
                                    int soft, int store_v, int store_h) {                                           \
    forward(x, v_init, params, spikes, v_seq, v_last, h_seq, steps, n,                                              \
            Flags{has_v_init, decay_input, soft, store_v, store_h});                                                \
  }                                                                                                                 \
  extern "C" __global__ void __launch_bounds__(kThreads) accelkit_spiking_bwd_##SUFFIX(                             \
      const S* x, const S* h_seq, const S* v_init, const S* grad_s, const S* grad_v, const S* grad_v_last,          \
      const S* params, S* grad_x, S* grad_v_init, double* grad_decay, long long steps, long long n, int has_v_init, \
      int has_grad_s, int has_grad_v, int has_grad_v_last, int want_decay, int decay_input, int soft,               \
      int surrogate, int detach_reset) {                                                                            \
    backward(x, h_seq, v_init, grad_s, grad_v, grad_v_last, params, grad_x, grad_v_init, grad_decay, steps, n,      \
             BwdFlags{has_v_init, has_grad_s, has_grad_v, has_grad_v_last, want_decay, decay_input, soft,           \
                      surrogate, detach_reset});                                                                    \
  }

ACCELKIT_SPIKING_KERNELS(float, f32)
ACCELKIT_SPIKING_KERNELS(double, f64)
