// The delta rule's token step (DeltaNet; gated when decay != 1), shared by the C++ CPU kernel (csrc/delta_rule.cpp)
// and any CUDA C kernel. kernels/delta_rule/reference.py is the float64 oracle and kernels/delta_rule/README.md the
// derivation. Per head the state h is [K, V], row-major (K-first, fla's layout):
//   h <- decay h;  e = v - h^T k;  h <- h + beta k e^T;  o = scale h^T q.
// Two passes over h per token: the decay fused with the error, the update fused with the output.
//
// The chunk form (csrc/delta_rule_chunk.cpp, kernels/delta_rule/README.md) needs per chunk of L tokens only the
// chunk-local gates below; its products are the vector micro-kernels of that file.
//
// The header is framework-free: no torch, no pybind11.
#pragma once

#include "accelkit/portable.h"

namespace accelkit {
namespace delta_rule {

enum class Status { ok, invalid, unsupported_isa };

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

// The gates of one chunk of `len` tokens, g read every `stride` floats: the chunk-local cumulative log decay
// G_i = g_0 + ... + g_i, gamma_i = exp(G_i) (what the entering state has decayed by at token i) and
// key_factor_i = exp(G_{len-1} - G_i) (what token i's update has decayed by at the chunk's end). The pairwise decay
// of the chunk is exp(G_i - G_j) for j <= i, taken as one exp of the difference: gamma_i / gamma_j overflows once
// G_j < -88 (a float's exp range), which a chunk of 64 tokens with g = -1.4 each already reaches.
ACCELKIT_HD_INLINE void chunk_gates(const float* g, int64_t stride, int64_t len, float* big_g, float* gamma,
                                    float* key_factor) {
  float sum = 0.0f;
  for (int64_t i = 0; i < len; ++i) {
    sum += g[i * stride];
    big_g[i] = sum;
    gamma[i] = std::exp(sum);
  }
  for (int64_t i = 0; i < len; ++i) key_factor[i] = std::exp(sum - big_g[i]);
}

#if !defined(__CUDACC_RTC__)
// The token recurrence over every (sequence, head), OpenMP over them: o [rows, heads, V], ht [sequences, heads, K, V]
// (the final states). Status::invalid, writing nothing, for negative sizes, null pointers or prefix sums that do not
// start at 0 and never decrease. threads = 0: the OpenMP default.
Status forward(const Problem& p, float* o, float* ht, int threads);

// Whether p, o and ht describe a call forward and chunk_forward may run (the checks forward documents).
bool problem_valid(const Problem& p, const float* o, const float* ht);
#endif

}  // namespace delta_rule
}  // namespace accelkit

#if !defined(__CUDACC__)
#include "accelkit/cpu_features.h"

namespace accelkit {
namespace delta_rule {

// The longest chunk chunk_forward takes: its per-thread scratch grows as chunk * (K + V).
constexpr int64_t kMaxChunk = 256;

// The chunk form on the CPU (csrc/delta_rule_chunk.cpp), the same inputs and outputs as forward: one program per
// (sequence, head) walks its chunks of `chunk` tokens in order (the last one partial) with the state in per-thread
// scratch. Status::invalid, writing nothing, where forward refuses or chunk is outside [1, kMaxChunk];
// Status::unsupported_isa for a path this CPU lacks. The avx512 path needs AVX512F and FMA, avx2 AVX2 and FMA.
bool chunk_isa_supported(Isa isa);
inline Isa chunk_best_isa() { return accelkit::best_isa(chunk_isa_supported); }
Status chunk_forward(const Problem& p, int64_t chunk, float* o, float* ht, Isa isa, int threads);

}  // namespace delta_rule
}  // namespace accelkit
#endif
