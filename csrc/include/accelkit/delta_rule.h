// The delta rule's token step (DeltaNet; gated when decay != 1), shared by the C++ CPU kernel (csrc/delta_rule.cpp)
// and any CUDA C kernel. kernels/delta_rule/reference.py is the float64 oracle and kernels/delta_rule/README.md the
// derivation. Per head the state h is [K, V], row-major (K-first, fla's layout):
//   h <- decay h;  e = v - h^T k;  h <- h + beta k e^T;  o = scale h^T q.
// Two passes over h per token: the decay fused with the error, the update fused with the output.
//
// The header is framework-free: no torch, no pybind11.
#pragma once

#include "accelkit/portable.h"

namespace accelkit {
namespace delta_rule {

enum class Status { ok, invalid };

// One call: `sequences` packed sequences, token t of sequence n at rows cu[n] <= t < cu[n + 1] of [rows, heads, D]
// float32 tensors. g and h0 may be null (ungated, zero initial state).
struct Problem {
  int64_t sequences, heads, key_dim, value_dim;
  const int64_t* cu;
  const float* q;
  const float* k;
  const float* v;
  const float* beta;
  const float* g;
  const float* h0;
  float scale;
};

// One token on one head's state h [K, V]; err is scratch of V floats; o receives V floats.
ACCELKIT_HD_INLINE void step(float* h, const float* k, const float* v, const float* q, float beta, float decay,
                         float scale, float* err, float* o, int64_t key_dim, int64_t value_dim) {
  for (int64_t j = 0; j < value_dim; ++j) err[j] = v[j];
  for (int64_t i = 0; i < key_dim; ++i) {
    float* row = h + i * value_dim;
    const float ki = k[i];
    for (int64_t j = 0; j < value_dim; ++j) {
      row[j] *= decay;
      err[j] -= ki * row[j];
    }
  }
  for (int64_t j = 0; j < value_dim; ++j) o[j] = 0.0f;
  for (int64_t i = 0; i < key_dim; ++i) {
    float* row = h + i * value_dim;
    const float c = beta * k[i];
    const float qi = scale * q[i];
    for (int64_t j = 0; j < value_dim; ++j) {
      row[j] += c * err[j];
      o[j] += qi * row[j];
    }
  }
}

#if !defined(__CUDACC_RTC__)
// The token recurrence over every (sequence, head), OpenMP over them: o [rows, heads, V], ht [sequences, heads, K, V]
// (the final states). Status::invalid, writing nothing, for negative sizes, null pointers or prefix sums that do not
// start at 0 and never decrease. threads = 0: the OpenMP default.
Status forward(const Problem& p, float* o, float* ht, int threads);
#endif

}  // namespace delta_rule
}  // namespace accelkit
