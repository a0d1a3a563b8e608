// CPU kernels for binary layers: sign packing and the XNOR/AND-popcount GEMMs (csrc/include/accelkit/binary.h).
//
// The GEMM is a GotoBLAS-style loop nest over packed rows. A "panel" call sweeps MR rows of A (kept in L1) across
// NC rows of W (a panel sized to sit in L2) for one K chunk, in MR x 4 register tiles that accumulate popcounts
// in vector registers over the chunk. The x86 paths are compiled per function with target attributes and picked
// at run time, so the build needs no -march flag.
#include <algorithm>
#include <cstring>
#include <vector>

#include "accelkit/binary.h"
#include "accelkit/cpu_features.h"

#if ACCELKIT_X86
#include <immintrin.h>
#endif

namespace accelkit {
namespace binary {
namespace {

// W panel budget: 256 KiB is half of a 512 KiB L2, the smallest per-core L2 among recent x86 server cores (larger
// ones have 1-2 MiB), leaving room for the A rows and the output tile.
constexpr int64_t kPanelBytes = 256 * 1024;
// K chunk: MR = 4 rows of A x 2 KiB = 8 KiB, a quarter of a 32 KiB L1d, so A stays in L1 while W streams past.
// 512 units = 16384 bits; K = 4096 (128 units) runs as one chunk. A multiple of 16 units (one zmm).
constexpr int64_t kChunkUnits = 512;
// Rows of A per tile: at K = 4096 a 64-row block is 32 KiB, and 4096 rows make 64 blocks x 8 W panels = 512 tiles,
// plenty to balance over the threads.
constexpr int64_t kTileRows = 64;
constexpr int kMaxMR = 4;
constexpr int kNR = 4;
// GEMMs of fewer unit-pairs (M x N x units) stay on the calling thread: 2^17 unit-pairs are 4.2 M MACs, a few
// microseconds for a core that retires one 512-bit VPOPCNTQ per cycle at 2-4 GHz, the same order as the fork/join
// of an OpenMP region, so smaller problems cannot gain from a second thread. tests/kernels/test_binary_cpp.py covers both sides.
constexpr int64_t kParallelWork = int64_t(1) << 17;
// Packing of fewer elements stays on the calling thread: 65536 floats are 256 KiB, read in microseconds by one
// core, again the order of an OpenMP fork/join.
constexpr int64_t kParallelPackElements = int64_t(1) << 16;

struct Panel {
  const uint32_t* a[kMaxMR];  // row pointers of A; rows past the end repeat the last valid row
  int mr;                     // valid rows among a[]
  const uint32_t* w;          // row 0 of W
  int64_t units;              // row stride of A and W in 32-bit units
  int64_t n0, n1;             // rows of W this panel covers
  int64_t u0, u1;             // unit range of this K chunk
  int32_t* out;               // out row of a[0], column 0
  int64_t ldo;
  bool first, last;           // first chunk overwrites out, the last applies bias - 2 * count
  const int64_t* bias;        // per row of a[]: k (xnor) or popcount(s_i) (spike)
};

using PanelFn = void (*)(const Panel&);

// Writes one tile. Between K chunks out holds the raw popcount sums; the last chunk turns them into dot products.
inline void store_tile(const Panel& p, int64_t j0, const int64_t* sums) {
  const int nr = static_cast<int>(std::min<int64_t>(kNR, p.n1 - j0));
  for (int i = 0; i < p.mr; ++i) {
    int32_t* o = p.out + i * p.ldo + j0;
    for (int j = 0; j < nr; ++j) {
      const int64_t v = sums[i * kNR + j] + (p.first ? 0 : o[j]);
      o[j] = static_cast<int32_t>(p.last ? p.bias[i] - 2 * v : v);
    }
  }
}

inline void w_rows(const Panel& p, int64_t j0, const uint32_t** w) {
  for (int j = 0; j < kNR; ++j) w[j] = p.w + std::min(j0 + j, p.n1 - 1) * p.units;
}

// Portable tile body; the 2 x 2 tile fits the 16 general registers next to the pointers.
// Inlined into each caller so the target("popcnt") copy gets POPCNT instructions.
template <bool kXor>
ACCELKIT_ALWAYS_INLINE void panel_generic(const Panel& p) {
  for (int64_t j0 = p.n0; j0 < p.n1; j0 += kNR) {
    const uint32_t* w[kNR];
    w_rows(p, j0, w);
    int64_t sums[kMaxMR * kNR] = {};
    for (int i0 = 0; i0 < p.mr; i0 += 2) {
      const uint32_t* a0 = p.a[i0];
      const uint32_t* a1 = p.a[std::min(i0 + 1, p.mr - 1)];
      for (int j1 = 0; j1 < kNR; j1 += 2) {
        int64_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
        int64_t u = p.u0;
        for (; u + 2 <= p.u1; u += 2) {
          uint64_t x0, x1, y0, y1;
          std::memcpy(&x0, a0 + u, 8);
          std::memcpy(&x1, a1 + u, 8);
          std::memcpy(&y0, w[j1] + u, 8);
          std::memcpy(&y1, w[j1 + 1] + u, 8);
          s00 += popcount64(kXor ? x0 ^ y0 : x0 & y0);
          s01 += popcount64(kXor ? x0 ^ y1 : x0 & y1);
          s10 += popcount64(kXor ? x1 ^ y0 : x1 & y0);
          s11 += popcount64(kXor ? x1 ^ y1 : x1 & y1);
        }
        if (u < p.u1) {
          const uint32_t x0 = a0[u], x1 = a1[u], y0 = w[j1][u], y1 = w[j1 + 1][u];
          s00 += popcount32(kXor ? x0 ^ y0 : x0 & y0);
          s01 += popcount32(kXor ? x0 ^ y1 : x0 & y1);
          s10 += popcount32(kXor ? x1 ^ y0 : x1 & y0);
          s11 += popcount32(kXor ? x1 ^ y1 : x1 & y1);
        }
        sums[i0 * kNR + j1] = s00;
        sums[i0 * kNR + j1 + 1] = s01;
        sums[(i0 + 1) * kNR + j1] = s10;
        sums[(i0 + 1) * kNR + j1 + 1] = s11;
      }
    }
    store_tile(p, j0, sums);
  }
}

template <bool kXor>
void panel_scalar_plain(const Panel& p) {
  panel_generic<kXor>(p);
}

int64_t row_popcount_plain(const uint32_t* s, int64_t units) {
  int64_t c = 0;
  for (int64_t u = 0; u < units; ++u) c += popcount32(s[u]);
  return c;
}

#if ACCELKIT_X86

// Same body; under target("popcnt") the builtins become one POPCNT instruction instead of a bit-twiddling call.
template <bool kXor>
__attribute__((target("popcnt"))) void panel_scalar_popcnt(const Panel& p) {
  panel_generic<kXor>(p);
}

__attribute__((target("popcnt"))) int64_t row_popcount_popcnt(const uint32_t* s, int64_t units) {
  int64_t c = 0;
  for (int64_t u = 0; u < units; ++u) c += __builtin_popcount(s[u]);
  return c;
}

// AVX2 has no vector popcount. Each byte's count is two 16-entry table lookups (VPSHUFB on the low and high
// nibble); byte counts add up for up to 31 vectors (31 x 8 = 248 < 256) before VPSADBW widens them to 64 bits.
// 2 x 4 tile: 8 byte accumulators + 2 A + 1 W + table + mask + 2 temporaries fill the 16 ymm registers.
constexpr int kAvx2Rows = 2;

template <bool kXor>
__attribute__((target("avx2"), always_inline)) inline __m256i byte_counts_avx2(__m256i x, __m256i y) {
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                         2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i v = kXor ? _mm256_xor_si256(x, y) : _mm256_and_si256(x, y);
  const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_add_epi8(lo, hi);
}

template <bool kMasked>
__attribute__((target("avx2"), always_inline)) inline __m256i load_avx2(const uint32_t* src, __m256i mask) {
  const auto* p = reinterpret_cast<const int*>(src);
  return kMasked ? _mm256_maskload_epi32(p, mask) : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Byte counts of rows a[0..1] against w[0..3] over 8 units at u, added into c8.
template <bool kXor, bool kMasked>
__attribute__((target("avx2"), always_inline)) inline void step_avx2(const Panel& p, const uint32_t* const* w,
                                                                      int64_t u, __m256i mask,
                                                                      __m256i (&c8)[kAvx2Rows][kNR]) {
  __m256i x[kAvx2Rows];
  for (int i = 0; i < kAvx2Rows; ++i) x[i] = load_avx2<kMasked>(p.a[i] + u, mask);
  for (int j = 0; j < kNR; ++j) {
    const __m256i y = load_avx2<kMasked>(w[j] + u, mask);
    for (int i = 0; i < kAvx2Rows; ++i) c8[i][j] = _mm256_add_epi8(c8[i][j], byte_counts_avx2<kXor>(x[i], y));
  }
}

template <bool kXor>
__attribute__((target("avx2"))) void panel_avx2(const Panel& p) {
  const __m256i zero = _mm256_setzero_si256();
  const int64_t full_end = p.u0 + (p.u1 - p.u0) / 8 * 8;
  const int tail = static_cast<int>(p.u1 - full_end);
  const __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t j0 = p.n0; j0 < p.n1; j0 += kNR) {
    const uint32_t* w[kNR];
    w_rows(p, j0, w);
    __m256i acc[kAvx2Rows][kNR];
    __m256i c8[kAvx2Rows][kNR];
    for (int i = 0; i < kAvx2Rows; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] = zero;
    for (int64_t u = p.u0; u < p.u1;) {
      for (int i = 0; i < kAvx2Rows; ++i)
        for (int j = 0; j < kNR; ++j) c8[i][j] = zero;
      if (u < full_end) {
        const int64_t block_end = std::min(full_end, u + 31 * 8);
        for (; u < block_end; u += 8) step_avx2<kXor, false>(p, w, u, tail_mask, c8);
      } else {
        step_avx2<kXor, true>(p, w, u, tail_mask, c8);
        u = p.u1;
      }
      for (int i = 0; i < kAvx2Rows; ++i)
        for (int j = 0; j < kNR; ++j) acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(c8[i][j], zero));
    }
    int64_t sums[kMaxMR * kNR] = {};
    for (int i = 0; i < kAvx2Rows; ++i)
      for (int j = 0; j < kNR; ++j) {
        alignas(32) int64_t lanes[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[i][j]);
        sums[i * kNR + j] = lanes[0] + lanes[1] + lanes[2] + lanes[3];
      }
    store_tile(p, j0, sums);
  }
}

// Sums 8 vectors of 8 partial counts into one vector [s0, ..., s7], s_t = sum of v[t]'s lanes, in 21 instructions
// instead of 8 full reductions (~7 each): pairs fold 64-bit lanes, then 128-bit lanes, then 256-bit halves.
__attribute__((target("avx512f"), always_inline)) inline __m512i reduce8(const __m512i* v) {
  __m512i s[4];
  for (int t = 0; t < 4; ++t)
    s[t] = _mm512_add_epi64(_mm512_unpacklo_epi64(v[2 * t], v[2 * t + 1]),
                            _mm512_unpackhi_epi64(v[2 * t], v[2 * t + 1]));
  // 0x88 picks 128-bit lanes (0, 2) of each operand, 0xDD lanes (1, 3).
  __m512i r[2];
  for (int t = 0; t < 2; ++t)
    r[t] = _mm512_add_epi64(_mm512_shuffle_i64x2(s[2 * t], s[2 * t + 1], 0x88),
                            _mm512_shuffle_i64x2(s[2 * t], s[2 * t + 1], 0xDD));
  return _mm512_add_epi64(_mm512_shuffle_i64x2(r[0], r[1], 0x88), _mm512_shuffle_i64x2(r[0], r[1], 0xDD));
}

// 4 x 4 tile of zmm accumulators: per 16 units, 8 loads, 16 xor/and, 16 VPOPCNTQ and 16 adds for 16 x 512 MACs.
// 16 accumulators + 4 A + 1 W + temporaries stay within the 32 zmm registers. 8 loads feed 48 ALU ops, so the tile
// is bound by the vector ALUs, not by L1: at P zmm ALU ops per cycle a step takes at least 48 / P cycles, and
// 8192 MACs per step give 8192 P / 48 MACs per cycle. bench/binary_gemm.py measures the VPOPCNTQ rate instead of
// assuming P. Leftover rows (M not a multiple of 4, and M = 1 matrix-vector products) run a 1 x 4 tile instead of
// recomputing copies.
constexpr int kAvx512Rows = 4;

// Masked loads cost more than plain ones on some cores (an extra mask-merge uop per load), so only the tail vector
// of a row uses them.
template <bool kXor, int MR, bool kInit, bool kMasked>
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) inline void step_avx512(
    const Panel& p, const uint32_t* const* w, int64_t u, __mmask16 mask, __m512i (&acc)[MR][kNR]) {
  __m512i x[MR];
  for (int i = 0; i < MR; ++i)
    x[i] = kMasked ? _mm512_maskz_loadu_epi32(mask, p.a[i] + u) : _mm512_loadu_si512(p.a[i] + u);
  for (int j = 0; j < kNR; ++j) {
    const __m512i y = kMasked ? _mm512_maskz_loadu_epi32(mask, w[j] + u) : _mm512_loadu_si512(w[j] + u);
    for (int i = 0; i < MR; ++i) {
      const __m512i c = _mm512_popcnt_epi64(kXor ? _mm512_xor_si512(x[i], y) : _mm512_and_si512(x[i], y));
      acc[i][j] = kInit ? c : _mm512_add_epi64(acc[i][j], c);
    }
  }
}

// Full 4 x 4 tile in one K chunk (the common case): bias - 2 * count for two rows at a time, in int32 lanes.
__attribute__((target("avx512f"), always_inline)) inline void store_full_tile_avx512(const Panel& p, int64_t j0,
                                                                                    __m512i rows01, __m512i rows23) {
  const __m512i two_rows[2] = {rows01, rows23};
  for (int h = 0; h < 2; ++h) {
    const __m256i count = _mm512_cvtepi64_epi32(two_rows[h]);
    const __m256i bias = _mm256_set_m128i(_mm_set1_epi32(static_cast<int32_t>(p.bias[2 * h + 1])),
                                          _mm_set1_epi32(static_cast<int32_t>(p.bias[2 * h])));
    const __m256i dot = _mm256_sub_epi32(bias, _mm256_add_epi32(count, count));
    int32_t* o = p.out + 2 * h * p.ldo + j0;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(dot));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + p.ldo), _mm256_extracti128_si256(dot, 1));
  }
}

template <bool kXor, int MR>
__attribute__((target("avx512f,avx512vpopcntdq"))) void panel_avx512(const Panel& p) {
  const int64_t full_end = p.u0 + (p.u1 - p.u0) / 16 * 16;
  // Masked loads read nothing past the row's end (masked-out elements never fault).
  const __mmask16 tail = static_cast<__mmask16>((1u << (p.u1 - full_end)) - 1u);
  const bool whole = p.first && p.last && p.mr == MR;
  for (int64_t j0 = p.n0; j0 < p.n1; j0 += kNR) {
    const uint32_t* w[kNR];
    w_rows(p, j0, w);
    __m512i acc[MR][kNR];
    // The first step initialises the accumulators (no zeroing, no add) and takes the masked tail vector if there
    // is one, so the main loop is unmasked and nothing follows it: a tail block after the loop made GCC copy all
    // 16 accumulators every iteration.
    int64_t u = p.u0;
    if (tail) {
      step_avx512<kXor, MR, true, true>(p, w, full_end, tail, acc);
    } else {
      step_avx512<kXor, MR, true, false>(p, w, u, tail, acc);
      u += 16;
    }
    for (; u < full_end; u += 16) step_avx512<kXor, MR, false, false>(p, w, u, tail, acc);
    alignas(64) int64_t sums[kMaxMR * kNR];
    if constexpr (MR == 4) {
      const __m512i rows01 = reduce8(&acc[0][0]);
      const __m512i rows23 = reduce8(&acc[2][0]);
      if (whole && j0 + kNR <= p.n1) {
        store_full_tile_avx512(p, j0, rows01, rows23);
        continue;
      }
      _mm512_store_si512(sums, rows01);
      _mm512_store_si512(sums + 8, rows23);
    } else {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < kNR; ++j) sums[i * kNR + j] = _mm512_reduce_add_epi64(acc[i][j]);
    }
    store_tile(p, j0, sums);
  }
}

#endif  // ACCELKIT_X86

struct Path {
  PanelFn xnor;
  PanelFn spike;
  int mr;
  PanelFn xnor_row = nullptr;  // 1-row tile for the rows left over after the mr-row tiles, where the path has one
  PanelFn spike_row = nullptr;
};

Path path_for(Isa isa) {
#if ACCELKIT_X86
  switch (isa) {
    case Isa::avx512:
      return {panel_avx512<true, kAvx512Rows>, panel_avx512<false, kAvx512Rows>, kAvx512Rows,
              panel_avx512<true, 1>, panel_avx512<false, 1>};
    case Isa::avx2:
      return {panel_avx2<true>, panel_avx2<false>, kAvx2Rows};
    case Isa::scalar:
      if (cpu_features().popcnt) return {panel_scalar_popcnt<true>, panel_scalar_popcnt<false>, 4};
      break;
  }
#endif
  return {panel_scalar_plain<true>, panel_scalar_plain<false>, 4};
}

int64_t row_popcount(const uint32_t* s, int64_t units) {
#if ACCELKIT_X86
  if (cpu_features().popcnt) return row_popcount_popcnt(s, units);
#endif
  return row_popcount_plain(s, units);
}

// int32 dot products -> float32 in place (same 4 bytes), for one finished tile while it is still in cache. memcpy
// keeps the int32/float type punning defined; compilers turn it into vector converts.
void tile_to_float(int32_t* out, int64_t ldo, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i) {
    int32_t* row = out + i * ldo;
    for (int64_t j = j0; j < j1; ++j) {
      int32_t v;
      std::memcpy(&v, row + j, sizeof v);
      const float f = static_cast<float>(v);
      std::memcpy(row + j, &f, sizeof f);
    }
  }
}

Status gemm(bool is_xor, const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units,
            const int64_t* bias, int32_t* out, Isa isa, bool to_float = false) {
  if (m == 0 || n == 0) return Status::ok;
  if (units == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(out + i * n, out + (i + 1) * n, static_cast<int32_t>(bias[i]));
    if (to_float) tile_to_float(out, n, 0, m, 0, n);
    return Status::ok;
  }
  const Path path = path_for(isa);
  const PanelFn fn = is_xor ? path.xnor : path.spike;
  const PanelFn fn_row = is_xor ? path.xnor_row : path.spike_row;
  const int64_t chunk = units <= kChunkUnits ? units : kChunkUnits;
  const int threads = max_threads();
  int64_t nc = std::max<int64_t>(kNR, kPanelBytes / (chunk * 4) / kNR * kNR);
  const int64_t m_blocks = (m + kTileRows - 1) / kTileRows;
  // Few rows of A (a matrix-vector shape): split W into more panels so every thread gets a tile.
  if (m_blocks < threads) nc = std::min(nc, std::max<int64_t>(kNR, (n / threads + kNR - 1) / kNR * kNR));
  nc = std::min(nc, n);
  const int64_t n_blocks = (n + nc - 1) / nc;
  const int64_t tiles = m_blocks * n_blocks;
  const bool parallel = threads > 1 && tiles > 1 && m * n * units >= kParallelWork;
  // Tile index -> (A block fastest), so tiles handed out together share a W panel. Dynamic, because cores may be
  // shared with other processes: with a static split the whole GEMM waits for whichever thread is slowed down.
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t mb = t % m_blocks, nb = t / m_blocks;
    const int64_t i_end = std::min(m, (mb + 1) * kTileRows);
    Panel p{};
    p.w = w;
    p.units = units;
    p.n0 = nb * nc;
    p.n1 = std::min(n, p.n0 + nc);
    p.ldo = n;
    for (int64_t u0 = 0; u0 < units; u0 += chunk) {
      p.u0 = u0;
      p.u1 = std::min(units, u0 + chunk);
      p.first = u0 == 0;
      p.last = p.u1 == units;
      for (int64_t i0 = mb * kTileRows; i0 < i_end;) {
        const bool single = i_end - i0 < path.mr && fn_row != nullptr;
        p.mr = single ? 1 : static_cast<int>(std::min<int64_t>(path.mr, i_end - i0));
        for (int i = 0; i < kMaxMR; ++i) p.a[i] = a + std::min<int64_t>(i0 + i, i0 + p.mr - 1) * units;
        p.out = out + i0 * n;
        p.bias = bias + i0;
        (single ? fn_row : fn)(p);
        i0 += p.mr;
      }
    }
    if (to_float) tile_to_float(out, n, mb * kTileRows, i_end, p.n0, p.n1);
  }
  return Status::ok;
}

// True when no row of x has a padding bit (past k) set; reads only the units that hold padding, 1 or 2 per row.
bool padding_clear(const uint32_t* x, int64_t rows, int64_t units, int64_t k) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t u = k / 32; u < units; ++u)
      if (x[r * units + u] & ~unit_mask(u, k)) return false;
  return true;
}

// x itself when its padding is clear (the case for everything pack_bits wrote), else a copy in `copy` with the
// padding cleared: M + N reads to check, and a copy (O((M + N) K), against the GEMM's O(M N K)) only when needed.
const uint32_t* without_padding(const uint32_t* x, int64_t rows, int64_t units, int64_t k,
                                std::vector<uint32_t>& copy) {
  if (padding_clear(x, rows, units, k)) return x;
  copy.assign(x, x + rows * units);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t u = k / 32; u < units; ++u) copy[r * units + u] &= unit_mask(u, k);
  return copy.data();
}

bool gemm_args_ok(const void* a, const void* w, int64_t m, int64_t n, int64_t units, const int32_t* out) {
  if (m < 0 || n < 0 || units < 0) return false;
  if (m > 0 && units > 0 && a == nullptr) return false;
  if (n > 0 && units > 0 && w == nullptr) return false;
  return m == 0 || n == 0 || out != nullptr;
}

// Packing: 32 sign bits per unit, element 32 * u + b in bit b. A 64-bit word is two units, low half first, which is
// the little-endian layout of the word.
template <typename T>
inline uint32_t pack_unit_scalar(const T* x, int64_t c0, int64_t count, int64_t col_stride) {
  uint32_t bits = 0;
  for (int64_t b = 0; b < count; ++b) bits |= sign_bit(x[(c0 + b) * col_stride]) << b;
  return bits;
}

#if ACCELKIT_X86
// _CMP_NGE_UQ is "not (x >= 0)", true for negatives and NaN and false for -0.0: exactly the packed bit.
__attribute__((target("avx2"))) inline uint32_t pack32_avx2(const float* x) {
  uint32_t bits = 0;
  for (int q = 0; q < 4; ++q) {
    const __m256 v = _mm256_cmp_ps(_mm256_loadu_ps(x + 8 * q), _mm256_setzero_ps(), _CMP_NGE_UQ);
    bits |= static_cast<uint32_t>(_mm256_movemask_ps(v)) << (8 * q);
  }
  return bits;
}

__attribute__((target("avx2"))) inline uint32_t pack32_avx2(const double* x) {
  uint32_t bits = 0;
  for (int q = 0; q < 8; ++q) {
    const __m256d v = _mm256_cmp_pd(_mm256_loadu_pd(x + 4 * q), _mm256_setzero_pd(), _CMP_NGE_UQ);
    bits |= static_cast<uint32_t>(_mm256_movemask_pd(v)) << (4 * q);
  }
  return bits;
}

__attribute__((target("avx512f"))) inline uint32_t pack32_avx512(const float* x) {
  const __m512 zero = _mm512_setzero_ps();
  const uint32_t lo = _mm512_cmp_ps_mask(_mm512_loadu_ps(x), zero, _CMP_NGE_UQ);
  const uint32_t hi = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), zero, _CMP_NGE_UQ);
  return lo | (hi << 16);
}

__attribute__((target("avx512f"))) inline uint32_t pack32_avx512(const double* x) {
  const __m512d zero = _mm512_setzero_pd();
  uint32_t bits = 0;
  for (int q = 0; q < 4; ++q)
    bits |= static_cast<uint32_t>(_mm512_cmp_pd_mask(_mm512_loadu_pd(x + 8 * q), zero, _CMP_NGE_UQ)) << (8 * q);
  return bits;
}

template <typename T>
__attribute__((target("avx2"))) void pack_row_avx2(const T* x, uint32_t* out, int64_t full) {
  for (int64_t u = 0; u < full; ++u) out[u] = pack32_avx2(x + 32 * u);
}

template <typename T>
__attribute__((target("avx512f"))) void pack_row_avx512(const T* x, uint32_t* out, int64_t full) {
  for (int64_t u = 0; u < full; ++u) out[u] = pack32_avx512(x + 32 * u);
}
#endif

template <typename T>
Status pack(const T* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride, void* out_words,
            int word_bits, Isa isa) {
  if ((word_bits != 32 && word_bits != 64) || rows < 0 || k < 0) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  const int64_t units = num_words(k, word_bits) * (word_bits / 32);
  if (rows == 0 || units == 0) return Status::ok;
  if (x == nullptr || out_words == nullptr) return Status::bad_argument;
  auto* out = static_cast<uint32_t*>(out_words);
  // The vector paths need unit-stride rows; other layouts take the scalar gather.
  const int64_t full = col_stride == 1 && isa != Isa::scalar ? k / 32 : 0;
  const bool parallel = rows > 1 && rows * k >= kParallelPackElements;
  // Dynamic in blocks of 16 rows, as the GEMM's tiles: on a shared host a static split waits for the slowest thread.
#pragma omp parallel for schedule(dynamic, 16) if (parallel)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * row_stride;
    uint32_t* dst = out + r * units;
#if ACCELKIT_X86
    if (full > 0 && isa == Isa::avx512) pack_row_avx512(row, dst, full);
    if (full > 0 && isa == Isa::avx2) pack_row_avx2(row, dst, full);
#endif
    for (int64_t u = full; u < units; ++u) {
      const int64_t c0 = 32 * u;
      dst[u] = c0 < k ? pack_unit_scalar(row, c0, std::min<int64_t>(32, k - c0), col_stride) : 0u;
    }
  }
  return Status::ok;
}

}  // namespace

bool isa_supported(Isa isa) {
  const CpuFeatures f = cpu_features();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return ACCELKIT_X86 && f.avx2;
    case Isa::avx512:
      return ACCELKIT_X86 && f.avx512_vpopcntdq;
  }
  return false;
}

Status pack_f32(const float* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride, void* out,
                int word_bits, Isa isa) {
  return pack(x, rows, k, row_stride, col_stride, out, word_bits, isa);
}

Status pack_f64(const double* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride, void* out,
                int word_bits, Isa isa) {
  return pack(x, rows, k, row_stride, col_stride, out, word_bits, isa);
}

// Both xnor entry points: checks, then the padding cleared where it is set, then the GEMM.
static Status xnor(const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units, int64_t k, int32_t* out,
                   Isa isa, bool to_float) {
  if (!gemm_args_ok(a, w, m, n, units, out) || k < 0 || k > 32 * units || k > INT32_MAX) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  const std::vector<int64_t> bias(static_cast<size_t>(m), k);
  std::vector<uint32_t> a_copy, w_copy;
  a = without_padding(a, m, units, k, a_copy);
  w = without_padding(w, n, units, k, w_copy);
  return gemm(true, a, w, m, n, units, bias.data(), out, isa, to_float);
}

Status xnor_gemm(const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units, int64_t k, int32_t* out,
                 Isa isa) {
  return xnor(a, w, m, n, units, k, out, isa, false);
}

Status xnor_gemm_f32(const uint32_t* a, const uint32_t* w, int64_t m, int64_t n, int64_t units, int64_t k,
                     float* out, Isa isa) {
  return xnor(a, w, m, n, units, k, reinterpret_cast<int32_t*>(out), isa, true);
}

Status spike_gemm(const uint32_t* s, const uint32_t* w, int64_t m, int64_t n, int64_t units, int32_t* out, Isa isa) {
  // Counts stay below 32 * units, and int32 outputs need them to fit.
  if (!gemm_args_ok(s, w, m, n, units, out) || 32 * units > INT32_MAX) return Status::bad_argument;
  if (!isa_supported(isa)) return Status::unsupported_isa;
  std::vector<int64_t> bias(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) bias[i] = row_popcount(s + i * units, units);
  return gemm(false, s, w, m, n, units, bias.data(), out, isa);
}

}  // namespace binary
}  // namespace accelkit
