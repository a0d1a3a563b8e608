// Bit math of binary (XNOR/popcount) layers, shared by the C++ CPU kernels and the CUDA C kernels.
//
// Conventions (kernels/binary/reference.py is the oracle): packing runs along K, LSB first; a set bit marks an
// element that is not >= 0 (negative or NaN), so sign(0) = +1; padding bits of the last word are 0 in every operand.
// For a, w in {+1, -1}^K with bits A, W: a . w = K - 2 * popcount(A xor W). For spikes s in {0, 1}^K (bit 1 =
// spike) and weights w: s . w = popcount(S) - 2 * popcount(S and W).
//
// The header is framework-free: no torch, no pybind11, and nothing NVRTC cannot compile, so CuPy can build the
// .cu file that includes it at run time.
#pragma once

#include "accelkit/portable.h"

namespace accelkit {
namespace binary {

ACCELKIT_HD int popcount32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __popc(x);
#elif defined(__GNUC__) || defined(__clang__)
  return __builtin_popcount(x);
#else
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  return static_cast<int>((((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
#endif
}

ACCELKIT_HD int popcount64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x);
#elif defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(x);
#else
  return popcount32(static_cast<uint32_t>(x)) + popcount32(static_cast<uint32_t>(x >> 32));
#endif
}

ACCELKIT_HD int popcount(uint32_t x) { return popcount32(x); }
ACCELKIT_HD int popcount(uint64_t x) { return popcount64(x); }

// Words needed for k elements; 0 for k = 0.
ACCELKIT_HD int64_t num_words(int64_t k, int word_bits) { return (k + word_bits - 1) / word_bits; }

// Bits of 32-bit unit `unit` that hold elements of a row of k: all 32 below the last element, the low k mod 32 in the
// unit holding it, none past it. Words carry padding bits past k that packing leaves 0, but words built elsewhere
// may set them, and a set padding bit would count as a mismatch and push a dot product outside [-k, k], so the
// GEMMs clear them with this mask.
ACCELKIT_HD uint32_t unit_mask(int64_t unit, int64_t k) {
  const int64_t valid = k - 32 * unit;
  if (valid >= 32) return 0xFFFFFFFFu;
  return valid <= 0 ? 0u : (1u << valid) - 1u;
}

// The packed bit of one element: 0 for x >= 0 (including -0.0), 1 for x < 0 and for NaN, since NaN >= 0 is false.
ACCELKIT_HD uint32_t sign_bit(float x) { return x >= 0.0f ? 0u : 1u; }
ACCELKIT_HD uint32_t sign_bit(double x) { return x >= 0.0 ? 0u : 1u; }

// The +-1 dot product one word pair contributes, given `valid` real (non-padding) bits in it.
template <typename Word>
ACCELKIT_HD int xnor_dot_word(Word a, Word w, int valid) {
  return valid - 2 * popcount(static_cast<Word>(a ^ w));
}

// a . w for two packed rows of n_words words that encode k elements.
template <typename Word>
ACCELKIT_HD int64_t xnor_dot(const Word* a, const Word* w, int64_t n_words, int64_t k) {
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n_words; ++i) mismatches += popcount(static_cast<Word>(a[i] ^ w[i]));
  return k - 2 * mismatches;
}

// s . w for a packed spike row s (bit 1 = spike) and a packed weight row w (bit 1 = -1).
template <typename Word>
ACCELKIT_HD int64_t spike_dot(const Word* s, const Word* w, int64_t n_words) {
  int64_t fired = 0;
  int64_t negative = 0;
  for (int64_t i = 0; i < n_words; ++i) {
    fired += popcount(s[i]);
    negative += popcount(static_cast<Word>(s[i] & w[i]));
  }
  return fired - 2 * negative;
}

}  // namespace binary
}  // namespace accelkit

#if !defined(__CUDACC__)
#include "accelkit/cpu_features.h"

// CPU kernels (csrc/binary.cpp). Plain pointers and sizes; every function validates its arguments and returns a
// Status instead of throwing, so the bindings decide how errors surface.
namespace accelkit {
namespace binary {

enum class Status : int { ok = 0, bad_argument = 1, unsupported_isa = 2 };

// Vector paths. The GEMM treats a packed row as a string of 32-bit units: xor/and + popcount summed over a whole
// row does not depend on how its bits are grouped into words, so 32- and 64-bit words share one kernel.
using accelkit::Isa;
using accelkit::isa_name;

bool isa_supported(Isa isa);
inline Isa best_isa() { return accelkit::best_isa(isa_supported); }

// x: rows x k elements at x[r * row_stride + c * col_stride] (strides in elements, may be negative or 0).
// out: rows x num_words(k, word_bits) words, contiguous, word_bits 32 or 64.
Status pack_f32(const float* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride, void* out,
                int word_bits, Isa isa);
Status pack_f64(const double* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride, void* out,
                int word_bits, Isa isa);

// a: m x units, w: n x units 32-bit units, both contiguous (units = words * word_bits / 32); out: m x n int32,
// contiguous. out[i][j] = k - 2 * popcount(a_i xor w_j), with 0 <= k <= 32 * units. Bits past k (padding) are
// ignored, whatever their value.
Status xnor_gemm(const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units, int64_t k, int32_t* out,
                 Isa isa);

// The same dot products as float32 (exact for k <= 2^24), converted tile by tile while the tile is in cache, so
// a float result needs no second pass over the output.
Status xnor_gemm_f32(const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units, int64_t k,
                     float* out, Isa isa);

// out[i][j] = popcount(s_i) - 2 * popcount(s_i and w_j).
Status spike_gemm(const uint32_t* s, const uint32_t* w, int64_t m, int64_t n, int64_t units, int32_t* out, Isa isa);

// Benchmark probes for the popcount roofline (csrc/binary_probe.cpp): the core clock measured with a chain of
// dependent integer adds (1 cycle of latency each), and the VPOPCNTQ zmm instructions retired per second with 12
// independent chains, by one thread or by `threads` threads running at once (their aggregate: vCPUs that share a
// core, or a busy host, show up as less than threads x the one-thread rate). All return 0 when the probe cannot
// run here (not x86-64 / no AVX-512 VPOPCNTDQ).
double measure_clock_hz();
double measure_vpopcntq_per_second();
double measure_vpopcntq_per_second_parallel(int threads);

}  // namespace binary
}  // namespace accelkit
#endif
