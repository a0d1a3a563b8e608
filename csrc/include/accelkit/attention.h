// Softmax-state math of decode attention, shared by the C++ CPU kernel (csrc/attention_decode.cpp) and any CUDA C
// kernel: the online-softmax update of one query row, the merge of partial (output, LSE) pairs, and the visibility
// rule of a cached chunk. kernels/attention/softmax_state.py is the float64 oracle of every function here and
// kernels/attention/README.md derives them.
//
// Conventions: scores are natural-log domain (s = scale * q . k); LSE is natural log; a row that saw no key has
// m = -inf, l = 0, acc = 0, or as a partial o = 0, lse = -inf, the identity of the merge. No function evaluates
// -inf - (-inf), 0 / 0 or log(0), so an empty row or piece never turns into a NaN.
//
// The header is framework-free: no torch, no pybind11, nothing NVRTC cannot compile.
#pragma once

#include "accelkit/portable.h"

namespace accelkit {
namespace attention {

// Chunks of up to 16 new tokens (speculative decoding drafts); the kernels size their masks for this.
constexpr int kMaxChunk = 16;

ACCELKIT_HD float neg_inf() { return -__builtin_huge_valf(); }

ACCELKIT_HD bool is_neg_inf(float x) { return x == neg_inf(); }

ACCELKIT_HD float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// bfloat16 is the high half of a float32, so widening is a 16-bit shift and exact.
ACCELKIT_HD float bf16_to_float(uint16_t bits) { return bits_to_float(static_cast<uint32_t>(bits) << 16); }

// exp(x) for x <= 0, the only arguments online softmax takes (every score minus a running max at least as large).
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, then a degree-7 Taylor polynomial of e^r (truncation error
// (ln2 / 2)^8 / 8! / e^(-ln2 / 2) = 7.3e-9 relative, below float32's half ulp of 6e-8) scaled by 2^n through the
// exponent bits. Below
// kExpFloor, where e^x < 1.2e-38 (under FLT_MIN, so the 2^n scaling would leave the normal range), the result is 0:
// such a term is at least 2^-126 times smaller than the term of the max (which is 1) and cannot change a float32
// sum. exp(-inf) = 0. The CPU kernel evaluates the same steps on whole vectors (exp_neg_vec there).
constexpr float kExpFloor = -87.0f;
constexpr float kLog2e = 1.44269504088896341f;
// ln 2 split so that n * kLn2Hi is exact for |n| < 2^10: kLn2Hi has 9 significant bits.
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to the nearest integer (round-to-nearest-even).
constexpr float kRoundMagic = 12582912.0f;
constexpr float kExpC2 = 1.0f / 2.0f, kExpC3 = 1.0f / 6.0f, kExpC4 = 1.0f / 24.0f, kExpC5 = 1.0f / 120.0f,
                kExpC6 = 1.0f / 720.0f, kExpC7 = 1.0f / 5040.0f;

ACCELKIT_HD float exp_neg(float x) {
  if (!(x >= kExpFloor)) return x != x ? x : 0.0f;  // NaN stays NaN; -inf and tiny arguments give 0
  const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  const float p =
      1.0f + r * (1.0f + r * (kExpC2 + r * (kExpC3 + r * (kExpC4 + r * (kExpC5 + r * (kExpC6 + r * kExpC7))))));
  // n in [-126, 0] here, so n + 127 is a valid biased exponent.
  return p * bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
}

// Keys query t of a T_q-token chunk sees in a sequence of `length` cached keys (the chunk included): j <= length -
// t_q + t, so the first `visible` keys. 0 when the chunk is longer than the cache (the first queries see nothing).
ACCELKIT_HD int64_t visible_keys(int64_t length, int64_t t_q, int64_t t) {
  const int64_t n = length - t_q + t + 1;
  return n < 0 ? 0 : (n > length ? length : n);
}

// The rescale factor of a running state when its max moves from m_old to m_new >= m_old: exp(m_old - m_new), and 0
// for a state that had seen nothing (m_old = -inf), never exp(-inf - (-inf)).
ACCELKIT_HD float rescale(float m_old, float m_new) {
  return is_neg_inf(m_old) ? 0.0f : exp_neg(m_old - m_new);
}

// One query row's running state: m the max score seen, l = sum exp(s - m); the accumulator sum exp(s - m) v is
// kept by the caller, multiplied by the factor `fold` returns.
struct RowState {
  float m;
  float l;
};

ACCELKIT_HD RowState empty_row() { return RowState{neg_inf(), 0.0f}; }

// Folds a block whose scores have max `block_max` into `state`: returns the factor the old l and accumulator must
// be multiplied by and sets state.m to the new max; the caller then adds exp(s - state.m) for the block's scores.
// A block with no visible key (block_max = -inf) leaves the state as it is (factor 1).
ACCELKIT_HD float fold(RowState& state, float block_max) {
  if (is_neg_inf(block_max) || block_max <= state.m) return 1.0f;
  const float factor = rescale(state.m, block_max);
  state.m = block_max;
  state.l *= factor;
  return factor;
}

// The LSE of a finished row: m + log(l), or -inf for a row that saw no key.
ACCELKIT_HD float row_lse(RowState state) { return state.l > 0.0f ? state.m + logf(state.l) : neg_inf(); }

// The factor that turns the accumulator into the output: 1 / l, or 0 for a row that saw no key (its accumulator is
// 0, so the output is 0, not 0 / 0).
ACCELKIT_HD float output_scale(RowState state) { return state.l > 0.0f ? 1.0f / state.l : 0.0f; }

// Flash-Decoding's combine of `count` partials of one row, lse[i * stride] for i < count: writes the weight of
// each partial, exp(lse_i - lse), into weights[i] and returns the merged lse = log sum_i exp(lse_i). The merged
// output is sum_i weights[i] * o_i; a partial with lse = -inf gets weight 0 and its output must not be read (it may
// be anything). All partials empty: every weight 0, lse -inf.
ACCELKIT_HD float combine_weights(const float* lse, int64_t count, int64_t stride, float* weights) {
  float top = neg_inf();
  for (int64_t i = 0; i < count; ++i) top = lse[i * stride] > top ? lse[i * stride] : top;
  if (is_neg_inf(top)) {
    for (int64_t i = 0; i < count; ++i) weights[i] = 0.0f;
    return neg_inf();
  }
  float total = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    weights[i] = rescale(lse[i * stride], top);
    total += weights[i];
  }
  // total >= 1 (the top partial contributes exp(0)), so the division and the log are safe.
  for (int64_t i = 0; i < count; ++i) weights[i] /= total;
  return top + logf(total);
}

}  // namespace attention
}  // namespace accelkit

#if !defined(__CUDACC__)
#include "accelkit/cpu_features.h"

// The CPU kernel (csrc/attention_decode.cpp). Plain pointers and sizes; the function checks what it can and returns
// a Status instead of throwing, so the bindings decide how errors surface. The bindings check everything else
// (shapes, strides, bounds of block_table and cache_seqlens, consistency of the schedule) before calling it.
namespace accelkit {
namespace attention {

enum class Status : int { ok = 0, bad_argument = 1, unsupported_isa = 2 };
enum class CacheType : int { f32 = 0, bf16 = 1 };
using accelkit::Isa;
using accelkit::isa_name;

bool isa_supported(Isa isa);
inline Isa best_isa() { return accelkit::best_isa(isa_supported); }

// Decode attention of a chunk of T_q new queries over a KV cache, partitioned into programs by a schedule
// (kernels/lean_attention/schedule.py: lean_schedule's stream-K ranges or split_kv_schedule's fixed split).
// Strides are in elements. Output tile o = b * h_kv + h covers query heads h * G .. h * G + G - 1 (G = h_q / h_kv)
// and every query of the chunk; a LeanTile is block_n keys of one output tile.
struct DecodeProblem {
  int64_t batch = 0, t_q = 0, h_q = 0, h_kv = 0, head_dim = 0;
  float scale = 1.0f;
  const float* q = nullptr;  // [B, T_q, H_q, D], any strides
  int64_t q_stride[4] = {0, 0, 0, 0};
  // k and v: [B, T_cache, H_kv, D] (no block_table) or pages [num_pages, page_size, H_kv, D]; stride of D is 1.
  const void* k = nullptr;
  const void* v = nullptr;
  CacheType cache_type = CacheType::f32;
  int64_t k_stride[3] = {0, 0, 0};
  int64_t v_stride[3] = {0, 0, 0};
  int64_t cache_rows = 0;  // T_cache, or page_size when paged
  int64_t num_pages = 0;   // pages of a paged cache (B for a contiguous one)
  const int32_t* block_table = nullptr;  // [B, max_blocks] or nullptr (contiguous)
  int64_t block_table_stride[2] = {0, 0};
  int64_t max_blocks = 0;
  const int64_t* seqlens = nullptr;  // [B]
  // The schedule: O = batch * h_kv output tiles, P programs.
  int64_t block_n = 0;
  int64_t num_programs = 0;
  const int64_t* tile_offsets = nullptr;    // [O + 1]
  const int64_t* program_starts = nullptr;  // [P + 1]
  const int64_t* first_program = nullptr;   // [O]
  const int64_t* num_pieces = nullptr;      // [O]
  const int64_t* piece_offsets = nullptr;   // [O + 1]
  float* out = nullptr;  // [B, T_q, H_q, D], C-contiguous
  float* lse = nullptr;  // [B, H_q, T_q], C-contiguous
};

// threads <= 0: the OpenMP default. Programs run on the threads in dynamic order; the result does not depend on
// the threads, only on the schedule.
Status decode_attention(const DecodeProblem& problem, Isa isa, int threads);

}  // namespace attention
}  // namespace accelkit
#endif
