// Decode attention on the CPU over a contiguous or paged KV cache, partitioned by a Lean Attention (stream-K) or
// Flash-Decoding (split-KV) schedule from kernels/lean_attention/schedule.py; the math is csrc/include/accelkit/
// attention.h.
//
// A program (one OpenMP task) walks its contiguous range of LeanTiles. Where the range holds whole output tiles of
// one sequence (the middle of every stream-K range), the neighbouring KV heads of the range share their key range,
// and the program processes them together, key-major: key j of heads h0 .. h1 is one contiguous run of the
// [.., T, H_kv, D] cache, so the prefetchers see a sequential stream instead of one 4 * D-byte row every
// H_kv * D * 4 bytes (16 KiB apart at H_kv = 32, D = 128, a new 4 KiB page per row). Each key's K and V rows are read
// from memory once for all the query rows of its head (the GQA group times the T_q tokens of the chunk).
//
// Partials: a tile cut into several pieces gets each piece's (output, LSE) in a workspace slot, and the program that
// finishes the tile's last piece merges them (an atomic counter per tile). The alternative, merging after a
// barrier, makes every thread wait for the slowest before any merge starts, and on a shared host the slowest is a
// thread that lost its core for a while; the last-arriving merge never waits, and the merge (pieces x rows x D
// floats, a few KiB) runs while the data is in some cache. It also keeps the kernel correct for any number of
// programs on any number of threads, as the GPU kernel must be. The pieces are merged in slot order, so the result
// depends on the schedule only, never on which thread finished last.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "accelkit/attention.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// The vector code is written once with GCC/clang vector types and always inlined into one entry point per
// instruction set (target attributes), so the build needs no -march flag and each copy uses its set's registers.
// Vector values never cross a call that is not inlined, so GCC's note that their ABI differs between instruction
// sets does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace accelkit {
namespace attention {
namespace {

typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
typedef int32_t i32x8 __attribute__((vector_size(32)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x4 __attribute__((vector_size(8)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));

template <class V>
struct Lanes;
template <>
struct Lanes<f32x4> {
  using I = i32x4;
  using H = u16x4;
  static constexpr int n = 4;
};
template <>
struct Lanes<f32x8> {
  using I = i32x8;
  using H = u16x8;
  static constexpr int n = 8;
};
template <>
struct Lanes<f32x16> {
  using I = i32x16;
  using H = u16x16;
  static constexpr int n = 16;
};

// Keys per chunk: the scores of a chunk (rows x 64 floats) and its row pointers stay in L1, and 64 keys amortise
// the per-row softmax bookkeeping (a max, a rescale) over 64 scores.
constexpr int64_t kChunk = 64;
// Query rows (heads x GQA group x T_q) processed together: 64 rows of D = 128 floats are 32 KiB of accumulators
// and 32 KiB of queries, within a 2 MiB L2 next to the streamed rows.
constexpr int64_t kGroupRows = 64;

template <class V>
ACCELKIT_ALWAYS_INLINE V splat(float x) {
  return V{} + x;
}

template <class V>
ACCELKIT_ALWAYS_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// bfloat16 bits widened to float32: zero-extend to 32 bits and shift into the high half (exact).
template <class V>
ACCELKIT_ALWAYS_INLINE V load(const uint16_t* p) {
  using I = typename Lanes<V>::I;
  typename Lanes<V>::H h;
  std::memcpy(&h, p, sizeof h);
  const I w = __builtin_convertvector(h, I) << 16;
  V v;
  std::memcpy(&v, &w, sizeof v);
  return v;
}

template <class V>
ACCELKIT_ALWAYS_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// Sum of the lanes by halving in registers (a loop over a lane array went through the stack).
ACCELKIT_ALWAYS_INLINE float hsum(const f32x4& v) {
  const f32x4 a = v + __builtin_shufflevector(v, v, 2, 3, 0, 1);
  const f32x4 b = a + __builtin_shufflevector(a, a, 1, 0, 3, 2);
  return b[0];
}

ACCELKIT_ALWAYS_INLINE float hsum(const f32x8& v) {
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7));
}

ACCELKIT_ALWAYS_INLINE float hsum(const f32x16& v) {
  return hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
              __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

ACCELKIT_ALWAYS_INLINE float to_float(float x) { return x; }
ACCELKIT_ALWAYS_INLINE float to_float(uint16_t x) { return bf16_to_float(x); }

// exp_neg of attention.h on every lane: the same reduction, polynomial and flush below kExpFloor.
template <class V>
ACCELKIT_ALWAYS_INLINE V exp_neg_vec(const V& x) {
  using I = typename Lanes<V>::I;
  const V floor = splat<V>(kExpFloor);
  const V xc = x < floor ? floor : x;
  const V n = (xc * kLog2e + kRoundMagic) - kRoundMagic;
  const V r = (xc - n * kLn2Hi) - n * kLn2Lo;
  V p = splat<V>(kExpC7);
  p = p * r + kExpC6;
  p = p * r + kExpC5;
  p = p * r + kExpC4;
  p = p * r + kExpC3;
  p = p * r + kExpC2;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const V y = p * scale;
  // NaN fails x < floor, so it keeps the NaN y computed from it.
  return x < floor ? V{} : y;
}

// q . k over d elements; q is zero-padded to a multiple of the vector width, k is not (its tail is read by lanes).
template <class V, class T>
ACCELKIT_ALWAYS_INLINE float dot(const float* q, const T* k, int64_t d) {
  constexpr int64_t w = Lanes<V>::n;
  V a0{}, a1{};
  int64_t i = 0;
  for (; i + 2 * w <= d; i += 2 * w) {
    a0 += load<V>(q + i) * load<V>(k + i);
    a1 += load<V>(q + i + w) * load<V>(k + i + w);
  }
  if (i + w <= d) {
    a0 += load<V>(q + i) * load<V>(k + i);
    i += w;
  }
  float s = hsum(a0 + a1);
  for (; i < d; ++i) s += q[i] * to_float(k[i]);
  return s;
}

// acc[0 .. d) += sum_u p[u] * v[u][0 .. d) for U keys at once: one load and store of acc per U value rows.
template <class V, int U, class T>
ACCELKIT_ALWAYS_INLINE void axpy(float* acc, const float* p, const T* const* v, int64_t d) {
  constexpr int64_t w = Lanes<V>::n;
  V pv[U];
  for (int u = 0; u < U; ++u) pv[u] = splat<V>(p[u]);
  int64_t i = 0;
  for (; i + w <= d; i += w) {
    V a = load<V>(acc + i);
    for (int u = 0; u < U; ++u) a += pv[u] * load<V>(v[u] + i);
    store<V>(acc + i, a);
  }
  for (; i < d; ++i)
    for (int u = 0; u < U; ++u) acc[i] += p[u] * to_float(v[u][i]);
}

// Consecutive output tiles of one sequence that a program covers over the same keys: KV heads h0 .. h0 + heads - 1
// of sequence b, keys [j0, j1). slot[i] < 0: head i's piece is its whole tile, written straight to the output.
struct Group {
  int64_t b = 0, h0 = 0, heads = 0, j0 = 0, j1 = 0;
  int64_t slot[kGroupRows] = {};
};

// Per-program buffers, reused by its groups.
template <class T>
struct Scratch {
  std::vector<float> q, acc, scores;
  std::vector<RowState> state;
  std::vector<const T*> krow, vrow;
};

template <class T>
struct Cache {
  const T* k;
  const T* v;
};

// Row pointers of keys c0 .. c0 + n - 1 of sequence b at KV head h0, walking pages without a division per key.
template <class T>
void row_pointers(const DecodeProblem& pr, Cache<T> cache, int64_t b, int64_t h0, int64_t c0, int64_t n,
                  const T** krow, const T** vrow) {
  int64_t page_index = pr.block_table ? c0 / pr.cache_rows : 0;
  int64_t slot = pr.block_table ? c0 % pr.cache_rows : c0;
  for (int64_t c = 0; c < n; ++c) {
    const int64_t page = pr.block_table
                             ? pr.block_table[b * pr.block_table_stride[0] + page_index * pr.block_table_stride[1]]
                             : b;
    krow[c] = cache.k + page * pr.k_stride[0] + slot * pr.k_stride[1] + h0 * pr.k_stride[2];
    vrow[c] = cache.v + page * pr.v_stride[0] + slot * pr.v_stride[1] + h0 * pr.v_stride[2];
    if (++slot == pr.cache_rows && pr.block_table) {
      slot = 0;
      ++page_index;
    }
  }
}

// Copies the group's query rows, times the scale, into s.q (rows of dp floats, zero-padded), and resets the state.
template <class T>
void load_queries(const DecodeProblem& pr, const Group& g, int64_t rows, int64_t dp, Scratch<T>& s) {
  const int64_t group = pr.h_q / pr.h_kv, d = pr.head_dim;
  std::fill(s.q.begin(), s.q.begin() + g.heads * rows * dp, 0.0f);
  std::fill(s.acc.begin(), s.acc.begin() + g.heads * rows * dp, 0.0f);
  std::fill(s.state.begin(), s.state.begin() + g.heads * rows, empty_row());
  for (int64_t hh = 0; hh < g.heads; ++hh)
    for (int64_t gi = 0; gi < group; ++gi)
      for (int64_t t = 0; t < pr.t_q; ++t) {
        const int64_t hq = (g.h0 + hh) * group + gi;
        const float* src = pr.q + g.b * pr.q_stride[0] + t * pr.q_stride[1] + hq * pr.q_stride[2];
        float* dst = s.q.data() + ((hh * group + gi) * pr.t_q + t) * dp;
        for (int64_t i = 0; i < d; ++i) dst[i] = pr.scale * src[i * pr.q_stride[3]];
      }
}

// Online softmax over the chunk's scores of each row: fold the chunk max into the state, rescale the accumulator,
// and replace the scores by exp(s - m) (0 for masked keys and rows that have seen nothing yet).
template <class V, class T>
ACCELKIT_ALWAYS_INLINE void softmax_chunk(int64_t rows_total, int64_t n, int64_t dp, Scratch<T>& s) {
  constexpr int64_t w = Lanes<V>::n;
  for (int64_t i = 0; i < rows_total; ++i) {
    float* sc = s.scores.data() + i * kChunk;
    float top = neg_inf();
    for (int64_t c = 0; c < n; ++c) top = sc[c] > top ? sc[c] : top;
    RowState& st = s.state[i];
    const float factor = fold(st, top);
    if (factor != 1.0f) {
      float* a = s.acc.data() + i * dp;
      for (int64_t d = 0; d < dp; d += w) store<V>(a + d, load<V>(a + d) * factor);
    }
    if (is_neg_inf(st.m)) {
      std::fill(sc, sc + kChunk, 0.0f);
      continue;
    }
    // Scores past n are -inf (the chunk tail), so whole vectors can run to kChunk.
    const V m = splat<V>(st.m);
    V sum{};
    for (int64_t c = 0; c < kChunk; c += w) {
      const V p = exp_neg_vec<V>(load<V>(sc + c) - m);
      store<V>(sc + c, p);
      sum += p;
    }
    st.l += hsum(sum);
  }
}

template <class V, class T>
ACCELKIT_ALWAYS_INLINE void run_chunk(const DecodeProblem& pr, Cache<T> cache, const Group& g, int64_t c0,
                                      int64_t n, int64_t rows, int64_t dp, Scratch<T>& s) {
  const int64_t d = pr.head_dim, rows_total = g.heads * rows;
  const int64_t length = pr.seqlens[g.b];
  const T** krow = s.krow.data();
  const T** vrow = s.vrow.data();
  row_pointers(pr, cache, g.b, g.h0, c0, n, krow, vrow);
  // No software prefetch: the rows of a group are runs of heads x D contiguous values read in address order, which
  // the hardware prefetchers follow; prefetching 1 to 16 keys ahead (into L1 or L2) measured slower than none.
  for (int64_t i = 0; i < rows_total; ++i)
    std::fill(s.scores.data() + i * kChunk + n, s.scores.data() + (i + 1) * kChunk, neg_inf());
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t hh = 0; hh < g.heads; ++hh) {
      const T* k = krow[c] + hh * pr.k_stride[2];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = hh * rows + r;
        s.scores[i * kChunk + c] = dot<V>(s.q.data() + i * dp, k, d);
      }
    }
  }
  // Causal edge of the chunk: row (g, t) sees keys j < visible_keys(length, T_q, t).
  if (c0 + n > length - pr.t_q + 1) {
    for (int64_t i = 0; i < rows_total; ++i) {
      const int64_t seen = visible_keys(length, pr.t_q, i % pr.t_q);
      for (int64_t c = std::max<int64_t>(0, seen - c0); c < n; ++c) s.scores[i * kChunk + c] = neg_inf();
    }
  }
  softmax_chunk<V>(rows_total, n, dp, s);
  int64_t c = 0;
  for (; c + 4 <= n; c += 4) {
    for (int64_t hh = 0; hh < g.heads; ++hh) {
      const T* v[4];
      for (int u = 0; u < 4; ++u) v[u] = vrow[c + u] + hh * pr.v_stride[2];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = hh * rows + r;
        const float* sc = s.scores.data() + i * kChunk + c;
        axpy<V, 4>(s.acc.data() + i * dp, sc, v, d);
      }
    }
  }
  for (; c < n; ++c)
    for (int64_t hh = 0; hh < g.heads; ++hh) {
      const T* v[1] = {vrow[c] + hh * pr.v_stride[2]};
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = hh * rows + r;
        axpy<V, 1>(s.acc.data() + i * dp, s.scores.data() + i * kChunk + c, v, d);
      }
    }
}

// Writes row i of the group (head hh, GQA member gi, token t) as a final output or as the partial of a slot.
template <class T>
void write_row(const DecodeProblem& pr, const Group& g, int64_t hh, int64_t r, int64_t dp, const Scratch<T>& s,
               float* ws_out, float* ws_lse) {
  const int64_t group = pr.h_q / pr.h_kv, rows = group * pr.t_q, d = pr.head_dim;
  const int64_t i = hh * rows + r;
  const RowState st = s.state[i];
  const float lse = row_lse(st), inv = output_scale(st);
  const float* a = s.acc.data() + i * dp;
  float* o;
  if (g.slot[hh] < 0) {
    const int64_t gi = r / pr.t_q, t = r % pr.t_q, hq = (g.h0 + hh) * group + gi;
    o = pr.out + ((g.b * pr.t_q + t) * pr.h_q + hq) * d;
    pr.lse[(g.b * pr.h_q + hq) * pr.t_q + t] = lse;
  } else {
    o = ws_out + (g.slot[hh] * rows + r) * d;
    ws_lse[g.slot[hh] * rows + r] = lse;
  }
  for (int64_t x = 0; x < d; ++x) o[x] = a[x] * inv;
}

// Merges the pieces of tile `tile` (slots piece_offsets[tile] ..) into the output, in slot order.
void merge_tile(const DecodeProblem& pr, int64_t tile, const float* ws_out, const float* ws_lse,
                std::vector<float>& weights) {
  const int64_t group = pr.h_q / pr.h_kv, rows = group * pr.t_q, d = pr.head_dim;
  const int64_t b = tile / pr.h_kv, h = tile % pr.h_kv;
  const int64_t first = pr.piece_offsets[tile], count = pr.num_pieces[tile];
  weights.resize(static_cast<size_t>(count));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t gi = r / pr.t_q, t = r % pr.t_q, hq = h * group + gi;
    const float lse = combine_weights(ws_lse + first * rows + r, count, rows, weights.data());
    float* o = pr.out + ((b * pr.t_q + t) * pr.h_q + hq) * d;
    std::fill(o, o + d, 0.0f);
    for (int64_t p = 0; p < count; ++p) {
      if (weights[p] == 0.0f) continue;  // an empty piece: its output is never read
      const float* src = ws_out + ((first + p) * rows + r) * d;
      for (int64_t x = 0; x < d; ++x) o[x] += weights[p] * src[x];
    }
    pr.lse[(b * pr.h_q + hq) * pr.t_q + t] = lse;
  }
}

struct Shared {
  float* ws_out;
  float* ws_lse;
  std::atomic<int64_t>* arrived;
};

template <class V, class T>
ACCELKIT_ALWAYS_INLINE void run_group(const DecodeProblem& pr, Cache<T> cache, const Group& g, Scratch<T>& s,
                                      const Shared& sh, std::vector<float>& weights) {
  constexpr int64_t w = Lanes<V>::n;
  const int64_t rows = pr.h_q / pr.h_kv * pr.t_q;
  const int64_t dp = (pr.head_dim + w - 1) / w * w;
  load_queries(pr, g, rows, dp, s);
  for (int64_t c0 = g.j0; c0 < g.j1; c0 += kChunk)
    run_chunk<V, T>(pr, cache, g, c0, std::min(kChunk, g.j1 - c0), rows, dp, s);
  for (int64_t hh = 0; hh < g.heads; ++hh) {
    for (int64_t r = 0; r < rows; ++r) write_row(pr, g, hh, r, dp, s, sh.ws_out, sh.ws_lse);
    if (g.slot[hh] < 0) continue;
    const int64_t tile = g.b * pr.h_kv + g.h0 + hh;
    // acq_rel: publishes this piece's partial and, for the last arrival, makes every other piece's visible.
    if (sh.arrived[tile].fetch_add(1, std::memory_order_acq_rel) + 1 == pr.num_pieces[tile])
      merge_tile(pr, tile, sh.ws_out, sh.ws_lse, weights);
  }
}

// Program p: its LeanTiles [program_starts[p], program_starts[p + 1]) as pieces of output tiles, neighbouring
// pieces with the same sequence and key range grouped (at most kGroupRows query rows per group).
template <class V, class T>
ACCELKIT_ALWAYS_INLINE void run_program(const DecodeProblem& pr, int64_t p, const Shared& sh) {
  constexpr int64_t w = Lanes<V>::n;
  const int64_t start = pr.program_starts[p], end = pr.program_starts[p + 1];
  if (start >= end) return;
  const int64_t tiles = pr.batch * pr.h_kv;
  const int64_t rows = pr.h_q / pr.h_kv * pr.t_q;
  const int64_t max_heads = std::max<int64_t>(1, std::min<int64_t>(kGroupRows, kGroupRows / std::max<int64_t>(rows, 1)));
  const int64_t dp = (pr.head_dim + w - 1) / w * w;
  Scratch<T> s;
  const int64_t max_rows = max_heads * rows;
  s.q.resize(static_cast<size_t>(max_rows * dp));
  s.acc.resize(static_cast<size_t>(max_rows * dp));
  s.scores.resize(static_cast<size_t>(max_rows * kChunk));
  s.state.resize(static_cast<size_t>(max_rows));
  s.krow.resize(kChunk);
  s.vrow.resize(kChunk);
  std::vector<float> weights;
  const Cache<T> cache{static_cast<const T*>(pr.k), static_cast<const T*>(pr.v)};
  // The tile holding `start`: the last o with tile_offsets[o] <= start (empty tiles before it skipped).
  int64_t o = std::upper_bound(pr.tile_offsets, pr.tile_offsets + tiles + 1, start) - pr.tile_offsets - 1;
  Group g;
  for (; o < tiles && pr.tile_offsets[o] < end; ++o) {
    const int64_t t0 = pr.tile_offsets[o], t1 = pr.tile_offsets[o + 1];
    if (t0 == t1) continue;
    const int64_t b = o / pr.h_kv, h = o % pr.h_kv, length = pr.seqlens[b];
    const int64_t j0 = (std::max(start, t0) - t0) * pr.block_n;
    const int64_t j1 = std::min((std::min(end, t1) - t0) * pr.block_n, length);
    const int64_t slot = pr.num_pieces[o] == 1 ? -1 : pr.piece_offsets[o] + (p - pr.first_program[o]);
    const bool joins = g.heads > 0 && g.b == b && g.h0 + g.heads == h && g.j0 == j0 && g.j1 == j1 &&
                       g.heads < max_heads;
    if (!joins) {
      if (g.heads > 0) run_group<V, T>(pr, cache, g, s, sh, weights);
      g.b = b;
      g.h0 = h;
      g.heads = 0;
      g.j0 = j0;
      g.j1 = j1;
    }
    g.slot[g.heads++] = slot;
  }
  if (g.heads > 0) run_group<V, T>(pr, cache, g, s, sh, weights);
}

// Output tiles of sequences with no keys get output 0 and LSE -inf (no program meets them).
void write_empty_tiles(const DecodeProblem& pr) {
  const int64_t d = pr.head_dim;
  for (int64_t b = 0; b < pr.batch; ++b) {
    if (pr.seqlens[b] > 0) continue;
    for (int64_t t = 0; t < pr.t_q; ++t)
      for (int64_t hq = 0; hq < pr.h_q; ++hq) {
        std::fill(pr.out + ((b * pr.t_q + t) * pr.h_q + hq) * d, pr.out + ((b * pr.t_q + t) * pr.h_q + hq + 1) * d,
                  0.0f);
        pr.lse[(b * pr.h_q + hq) * pr.t_q + t] = neg_inf();
      }
  }
}

// One program on each instruction set. The OpenMP loop stays outside these: GCC outlines a parallel region before
// it inlines, so a region inside a target("avx512f") function would run in a function without the attribute.
using ProgramFn = void (*)(const DecodeProblem&, int64_t, const Shared&);

template <class T>
void program_generic(const DecodeProblem& pr, int64_t p, const Shared& sh) {
  run_program<f32x4, T>(pr, p, sh);
}

#if ACCELKIT_X86
template <class T>
__attribute__((target("avx2,fma"))) void program_avx2(const DecodeProblem& pr, int64_t p, const Shared& sh) {
  run_program<f32x8, T>(pr, p, sh);
}

template <class T>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) void program_avx512(const DecodeProblem& pr,
                                                                                         int64_t p,
                                                                                         const Shared& sh) {
  run_program<f32x16, T>(pr, p, sh);
}
#endif

template <class T>
ProgramFn program_for(Isa isa) {
#if ACCELKIT_X86
  if (isa == Isa::avx512) return program_avx512<T>;
  if (isa == Isa::avx2) return program_avx2<T>;
#endif
  (void)isa;
  return program_generic<T>;
}

bool problem_ok(const DecodeProblem& pr) {
  if (pr.batch < 0 || pr.t_q < 0 || pr.h_q < 1 || pr.h_kv < 1 || pr.h_q % pr.h_kv != 0 || pr.head_dim < 0)
    return false;
  if (pr.block_n < 1 || pr.num_programs < 1) return false;
  if (pr.batch == 0 || pr.t_q == 0) return true;
  if (!pr.q || !pr.k || !pr.v || !pr.seqlens || !pr.out || !pr.lse || !pr.tile_offsets || !pr.program_starts ||
      !pr.first_program || !pr.num_pieces || !pr.piece_offsets)
    return false;
  if (pr.block_table ? pr.cache_rows < 1 : false) return false;
  return true;
}

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
#if ACCELKIT_X86
    case Isa::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
#else
    default:
      return false;
#endif
  }
  return false;
}

Status decode_attention(const DecodeProblem& pr, Isa isa, int threads) {
  if (!problem_ok(pr)) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  if (pr.batch == 0 || pr.t_q == 0) return Status::ok;
  const int64_t tiles = pr.batch * pr.h_kv;
  const int64_t rows = pr.h_q / pr.h_kv * pr.t_q;
  const int64_t pieces = pr.piece_offsets[tiles];
  std::vector<float> ws_out(static_cast<size_t>(pieces * rows * pr.head_dim));
  std::vector<float> ws_lse(static_cast<size_t>(pieces * rows));
  std::unique_ptr<std::atomic<int64_t>[]> arrived(new std::atomic<int64_t>[static_cast<size_t>(tiles)]);
  for (int64_t o = 0; o < tiles; ++o) arrived[o].store(0, std::memory_order_relaxed);
  const Shared sh{ws_out.data(), ws_lse.data(), arrived.get()};
  write_empty_tiles(pr);
#ifdef _OPENMP
  if (threads <= 0) threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, pr.num_programs)));
  const ProgramFn fn = pr.cache_type == CacheType::bf16 ? program_for<uint16_t>(isa) : program_for<float>(isa);
  const int64_t programs = pr.num_programs;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t p = 0; p < programs; ++p) fn(pr, p, sh);
  return Status::ok;
}

}  // namespace attention
}  // namespace accelkit
