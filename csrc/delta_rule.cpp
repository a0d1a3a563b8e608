// The delta rule's token recurrence on the CPU (ops.delta_rule(mode="recurrent") on CPU tensors): one program per
// (sequence, head) walks its tokens with the [K, V] float32 state in the final-state output, so nothing but the
// state and a row of V floats of scratch is touched per token; OpenMP spreads the programs over threads. The step
// math is csrc/include/accelkit/delta_rule.h.
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "accelkit/delta_rule.h"

namespace accelkit {
namespace delta_rule {
bool problem_valid(const Problem& p, const float* o, const float* ht) {
  if (p.sequences < 0 || p.heads < 0 || p.key_dim < 1 || p.value_dim < 1 || !p.cu || !ht) return false;
  if (p.cu[0] != 0) return false;
  for (int64_t n = 0; n < p.sequences; ++n)
    if (p.cu[n + 1] < p.cu[n]) return false;
  if (p.cu[p.sequences] > 0 && (!p.q || !p.k || !p.v || !p.beta || !o)) return false;
  return true;
}

namespace {

void program(const Problem& p, int64_t index, float* o, float* ht, float* err) {
  const int64_t n = index / p.heads, head = index % p.heads;
  const int64_t kd = p.key_dim, vd = p.value_dim, size = kd * vd;
  float* h = ht + index * size;
  for (int64_t i = 0; i < size; ++i) h[i] = p.h0 ? p.h0[index * size + i] : 0.0f;
  for (int64_t t = p.cu[n]; t < p.cu[n + 1]; ++t) {
    const int64_t row = t * p.heads + head;
    const float decay = p.g ? std::exp(p.g[row]) : 1.0f;
    step(h, p.k + row * kd, p.v + row * vd, p.q + row * kd, p.beta[row], decay, p.scale, err, o + row * vd, kd, vd);
  }
}

}  // namespace

Status forward(const Problem& p, float* o, float* ht, int threads) {
  if (!problem_valid(p, o, ht) || threads < 0) return Status::invalid;
  const int64_t programs = p.sequences * p.heads;
#ifdef _OPENMP
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<float> err(static_cast<size_t>(p.value_dim));
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < programs; ++index) program(p, index, o, ht, err.data());
  }
#else
  std::vector<float> err(static_cast<size_t>(p.value_dim));
  for (int64_t index = 0; index < programs; ++index) program(p, index, o, ht, err.data());
#endif
  return Status::ok;
}

}  // namespace delta_rule
}  // namespace accelkit
