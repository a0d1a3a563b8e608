// Standalone test of the spiking-neuron kernels (csrc/spiking.cpp, math in csrc/include/accelkit/spiking.h) against a
// plain scalar loop in double. No framework and no Python, so `make sanitize` builds it with ASan + UBSan: every
// buffer is a std::vector of exactly the [T, N] or [N] elements the kernel may touch, so a read or write past a
// chunk, a row or the last neuron aborts the run. Sizes sit on the edges of the kernels' chunking: N of 0, 1, odd,
// one short and one past the 64-neuron minimum and the 1024-neuron chunk; T of 0, 1 and long enough to shrink the
// backward's chunk (T = 600: 32768 / 600 -> 48 -> the 64 minimum). Inputs are multiples of 1/16, so the fp32
// membrane is exact over the first ~20 steps (after that the halvings outgrow 24 bits; membranes are compared to
// 1e-4) and the spikes match the double loop exactly for these seeds.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "accelkit/spiking.h"

#include "check.h"

namespace as = accelkit::spiking;

namespace {

using accelkit_test::check;

struct Ref {
  std::vector<double> spikes, v_seq, grad_x, grad_v_init;
  double grad_decay = 0.0;
};

double surrogate(double x, int kind, double alpha) {
  if (kind == as::kSigmoid) {
    const double s = 1.0 / (1.0 + std::exp(-alpha * x));
    return alpha * s * (1.0 - s);
  }
  if (kind == as::kAtan) return alpha / (2.0 * (1.0 + std::pow(1.5707963267948966 * alpha * x, 2)));
  return std::fabs(x) <= 1.0 / alpha ? alpha - alpha * alpha * std::fabs(x) : 0.0;
}

Ref reference(const std::vector<float>& x, const std::vector<float>& v0, const std::vector<float>& gs, int64_t t,
              int64_t n, const as::NeuronParams& p) {
  Ref r;
  const size_t tn = static_cast<size_t>(t * n);
  r.spikes.assign(tn, 0.0);
  r.v_seq.assign(tn, 0.0);
  r.grad_x.assign(tn, 0.0);
  r.grad_v_init.assign(static_cast<size_t>(n), 0.0);
  const double vr = p.soft_reset ? 0.0 : p.v_reset, d = p.decay;
  std::vector<double> h(tn);
  for (int64_t i = 0; i < n; ++i) {
    double v = v0.empty() ? vr : v0[i];
    for (int64_t s = 0; s < t; ++s) {
      const size_t k = static_cast<size_t>(s * n + i);
      h[k] = p.decay_input ? v + d * (x[k] - (v - vr)) : v - d * (v - vr) + x[k];
      r.spikes[k] = h[k] >= p.v_threshold ? 1.0 : 0.0;
      v = p.soft_reset ? h[k] - p.v_threshold * r.spikes[k] : (r.spikes[k] > 0 ? p.v_reset : h[k]);
      r.v_seq[k] = v;
    }
    double g_next = 0.0;
    for (int64_t s = t - 1; s >= 0; --s) {
      const size_t k = static_cast<size_t>(s * n + i);
      const double sg = surrogate(h[k] - p.v_threshold, p.surrogate, p.alpha);
      const double keep = p.detach_reset ? 0.0 : 1.0;
      const double dvdh = p.soft_reset ? 1.0 - p.v_threshold * sg * keep
                                       : (1.0 - r.spikes[k]) + (p.v_reset - h[k]) * sg * keep;
      const double gh = g_next * (1.0 - d) * dvdh + gs[k] * sg;
      r.grad_x[k] = gh * (p.decay_input ? d : 1.0);
      const double v_prev = s > 0 ? r.v_seq[k - n] : (v0.empty() ? vr : v0[i]);
      r.grad_decay += gh * (p.decay_input ? x[k] - (v_prev - vr) : vr - v_prev);
      g_next = gh;
    }
    r.grad_v_init[i] = g_next * (1.0 - d);
  }
  return r;
}

bool close(double a, double b) { return std::fabs(a - b) <= 1e-4 + 1e-4 * std::fabs(b); }

void run_case(int64_t t, int64_t n, const as::NeuronParams& p, bool with_v0, bool saved_h, accelkit::Isa isa,
              std::mt19937& rng) {
  std::uniform_int_distribution<int> grid(-12, 27), small(-8, 8);
  const size_t tn = static_cast<size_t>(t * n);
  std::vector<float> x(tn), gs(tn), v0(with_v0 ? n : 0);
  for (auto& e : x) e = grid(rng) / 16.0f;
  for (auto& e : gs) e = small(rng) / 8.0f;
  for (auto& e : v0) e = small(rng) / 16.0f;
  const Ref r = reference(x, v0, gs, t, n, p);
  std::vector<float> spikes(tn), v_seq(tn), h_seq(saved_h ? tn : 0), v_last(n), grad_x(tn), grad_v0(n);
  as::ForwardArgs<float> fa;
  fa.x = x.data();
  fa.v_init = with_v0 ? v0.data() : nullptr;
  fa.spikes = spikes.data();
  fa.v_seq = v_seq.data();
  fa.v_last = v_last.data();
  fa.h_seq = saved_h ? h_seq.data() : nullptr;
  fa.t = t;
  fa.n = n;
  const std::string tag = " t=" + std::to_string(t) + " n=" + std::to_string(n) + " soft=" +
                          std::to_string(p.soft_reset) + " sur=" + std::to_string(p.surrogate);
  check(as::forward(fa, p, isa, 2) == as::Status::ok, "forward status" + tag);
  as::BackwardArgs<float> ba;
  ba.x = x.data();
  ba.h_seq = saved_h ? h_seq.data() : nullptr;
  ba.v_init = fa.v_init;
  ba.grad_spikes = gs.data();
  ba.grad_x = grad_x.data();
  ba.grad_v_init = grad_v0.data();
  double grad_decay = -1.0;
  ba.grad_decay = &grad_decay;
  ba.t = t;
  ba.n = n;
  check(as::backward(ba, p, isa, 2) == as::Status::ok, "backward status" + tag);
  bool spikes_ok = true, v_ok = true, gx_ok = true, gv_ok = true;
  for (size_t k = 0; k < tn; ++k) {
    spikes_ok &= spikes[k] == r.spikes[k];
    v_ok &= close(v_seq[k], r.v_seq[k]);
    gx_ok &= close(grad_x[k], r.grad_x[k]);
  }
  for (int64_t i = 0; i < n; ++i) gv_ok &= close(grad_v0[i], r.grad_v_init[i]);
  check(spikes_ok, "spikes" + tag);
  check(v_ok, "v_seq" + tag);
  check(gx_ok, "grad_x" + tag);
  check(gv_ok, "grad_v_init" + tag);
  check(std::fabs(grad_decay - r.grad_decay) <= 1e-3 + 1e-4 * std::fabs(r.grad_decay), "grad_decay" + tag);
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  int cases = 0;
  for (accelkit::Isa isa : {accelkit::Isa::scalar, accelkit::Isa::avx2}) {
    if (!as::isa_supported(isa)) continue;
    for (int64_t t : {0, 1, 5}) {
      for (int64_t n : {0, 1, 7, 63, 64, 65, 1023, 1024, 1025}) {
        for (int surrogate : {as::kSigmoid, as::kAtan, as::kTriangle}) {
          for (bool soft : {false, true}) {
            as::NeuronParams p;
            p.decay = 0.5;
            p.decay_input = (n % 2) == 1;
            p.soft_reset = soft;
            p.v_reset = soft ? 0.0 : -0.5;
            p.surrogate = surrogate;
            p.alpha = surrogate == as::kSigmoid ? 4.0 : (surrogate == as::kAtan ? 2.0 : 1.0);
            p.detach_reset = (t + n) % 3 == 0;
            run_case(t, n, p, n % 3 != 0, surrogate == as::kAtan, isa, rng);
            ++cases;
          }
        }
      }
    }
    as::NeuronParams p;
    run_case(600, 130, p, true, false, isa, rng);
    ++cases;
  }
  // Bad arguments come back as a status, never as a crash.
  as::ForwardArgs<float> bad;
  bad.t = 2;
  bad.n = 3;
  check(as::forward(bad, as::NeuronParams{}, accelkit::Isa::scalar, 1) == as::Status::bad_argument, "null x");
  as::NeuronParams nan_alpha;
  nan_alpha.alpha = std::nan("");
  as::BackwardArgs<float> empty;
  check(as::backward(empty, nan_alpha, accelkit::Isa::scalar, 1) == as::Status::bad_argument, "alpha NaN");
  return accelkit_test::report("test_spiking", ", " + std::to_string(cases) + " cases");
}
