// The delta rule's chunk form on the CPU (ops.delta_rule(mode="chunk") on CPU tensors). One program per
// (sequence, head) walks its chunks in order with the [K, V] state in per-thread scratch, and OpenMP hands the
// N * H programs to threads with a dynamic schedule and no barrier between chunks: the batched PyTorch form paid an
// OpenMP fork and join in every one of its ~90 small torch calls, which on two cores cost more than the arithmetic.
//
// Per chunk of L tokens (kernels/delta_rule/README.md derives it; G, gamma and the key factors are chunk_gates of
// csrc/include/accelkit/delta_rule.h, all 1 for the plain rule):
//   P   = [K; Q] K^T                   lower triangles only: A = tril(diag(beta) K K^T * decay, -1) and the scores
//   X S = [K; Q] S                     one product for both, against the entering state S
//   V'  = (I + A)^{-1} (beta * (V - gamma * K S))     forward substitution, blocks of rows against earlier rows
//   O   = gamma * (Q S) + (scores * decay) V'
//   S  <- gamma_last S + (K * key_factor)^T V'
// V' is W S subtracted from U with W = M (beta gamma K), U = M (beta V), M = (I + A)^{-1}, reassociated as
// M (beta V - beta gamma K S): the same vector, without forming M or W (L^3 / 3 + L^2 K multiply-adds saved).
//
// Every product is the register-blocked micro-kernel `tile` (rows of A broadcast, vectors of B's rows), written
// once with GCC vector types and always inlined into one program per instruction set (target attributes, runtime
// dispatch), so the build needs no -march flag. Scratch rows are padded to 16 floats, so every vector load is whole.
#include <algorithm>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "accelkit/delta_rule.h"

// Vector values never cross a call that is not inlined, so GCC's note that their ABI differs between instruction
// sets does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace accelkit {
namespace delta_rule {
namespace {

typedef float f32x4 __attribute__((vector_size(16)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));

// Scratch rows are padded to the widest vector, so each path's vectors divide them.
constexpr int64_t kPad = 16;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

template <class V>
constexpr int64_t lanes() {
  return static_cast<int64_t>(sizeof(V) / sizeof(float));
}

// Rows x vectors of one register tile: SSE and AVX2 have 16 vector registers (8 accumulators, the B vectors and a
// broadcast), AVX-512 has 32 (16 accumulators): per k step R broadcasts and NV loads feed R * NV multiply-adds.
template <class V>
struct Tile {
  static constexpr int rows = 4, vecs = 2;
};
template <>
struct Tile<f32x16> {
  static constexpr int rows = 4, vecs = 4;
};

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

template <class V>
ACCELKIT_ALWAYS_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// c[R, NV lanes] = cscale * c + alpha * a[R, k] b[k, NV lanes]; c is not read when cscale == 0 (it may hold stale
// scratch).
template <class V, int R, int NV>
ACCELKIT_ALWAYS_INLINE void tile(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                                 int64_t k, float cscale, float alpha) {
  constexpr int64_t w = lanes<V>();
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t kk = 0; kk < k; ++kk) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load<V>(b + kk * ldb + v * w);
    for (int r = 0; r < R; ++r) {
      const V av = splat<V>(a[r * lda + kk]);
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      float* dst = c + r * ldc + v * w;
      V out = acc[r][v] * alpha;
      if (cscale != 0.0f) out += load<V>(dst) * cscale;
      store<V>(dst, out);
    }
}

// The tile for a run of nv <= Tile::vecs vectors.
template <class V, int R, int NV = Tile<V>::vecs>
ACCELKIT_ALWAYS_INLINE void tile_vecs(int nv, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                                      int64_t ldc, int64_t k, float cscale, float alpha) {
  if constexpr (NV > 1) {
    if (nv < NV) return tile_vecs<V, R, NV - 1>(nv, a, lda, b, ldb, c, ldc, k, cscale, alpha);
  }
  tile<V, R, NV>(a, lda, b, ldb, c, ldc, k, cscale, alpha);
}

// The tile for r <= Tile::rows rows.
template <class V, int R = Tile<V>::rows>
ACCELKIT_ALWAYS_INLINE void tile_rows(int r, int nv, const float* a, int64_t lda, const float* b, int64_t ldb,
                                      float* c, int64_t ldc, int64_t k, float cscale, float alpha) {
  if constexpr (R > 1) {
    if (r < R) return tile_rows<V, R - 1>(r, nv, a, lda, b, ldb, c, ldc, k, cscale, alpha);
  }
  tile_vecs<V, R>(nv, a, lda, b, ldb, c, ldc, k, cscale, alpha);
}

// Which part of a product is needed: all of it, the columns j < i0 + rows of each row block (c = A B^T with a
// lower-triangular result), or the k < i0 + rows of each row block (A lower triangular, zero above its diagonal).
enum class Tri { none, lower_n, lower_k };

// c[m, n] = cscale * c + alpha * a[m, k] b[k, n], n a multiple of the vector width, row-major with leading dims.
template <class V>
ACCELKIT_ALWAYS_INLINE void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                                 int64_t ldb, float* c, int64_t ldc, float cscale, float alpha, Tri tri) {
  constexpr int64_t w = lanes<V>(), rows = Tile<V>::rows, step = Tile<V>::vecs * w;
  for (int64_t i0 = 0; i0 < m; i0 += rows) {
    const int r = static_cast<int>(std::min(rows, m - i0));
    const int64_t n_end = tri == Tri::lower_n ? std::min(n, round_up(i0 + r, w)) : n;
    const int64_t k_end = tri == Tri::lower_k ? std::min(k, i0 + r) : k;
    for (int64_t j0 = 0; j0 < n_end; j0 += step) {
      const int nv = static_cast<int>(std::min(step, n_end - j0) / w);
      tile_rows<V>(r, nv, a + i0 * lda, lda, b + j0, ldb, c + i0 * ldc + j0, ldc, k_end, cscale, alpha);
    }
  }
}

// y[n] += alpha x[n], n a multiple of the vector width.
template <class V>
ACCELKIT_ALWAYS_INLINE void axpy(int64_t n, float alpha, const float* x, float* y) {
  constexpr int64_t w = lanes<V>();
  const V av = splat<V>(alpha);
  for (int64_t j = 0; j < n; j += w) store<V>(y + j, load<V>(y + j) + av * load<V>(x + j));
}

// One thread's scratch, rows padded: cp = chunk and vp = V rounded up to kPad.
struct Scratch {
  float* x;      // [2 * chunk, K]: the chunk's keys, then its queries times scale
  float* kt;     // [K, cp]: K^T, then (K * key_factor)^T
  float* p;      // [2 * chunk, cp]: K K^T -> A, then Q K^T -> scores * decay
  float* xs;     // [2 * chunk, vp]: K S, then Q S -> O
  float* vn;     // [chunk, vp]: V -> V'
  float* s;      // [K, vp]: the state
  float* gates;  // [4 * chunk]: beta, G, gamma, key_factor
};

struct Sizes {
  int64_t chunk, cp, kd, vd, vp;
};

Sizes sizes(const Problem& p, int64_t chunk) {
  return {chunk, round_up(chunk, kPad), p.key_dim, p.value_dim, round_up(p.value_dim, kPad)};
}

// Each buffer starts on a 64-byte line, so the padded rows of kt, p, xs, vn and s are vector-aligned.
int64_t scratch_floats(const Sizes& z) {
  const int64_t parts[] = {2 * z.chunk * z.kd, z.kd * z.cp, 2 * z.chunk * z.cp, 2 * z.chunk * z.vp,
                           z.chunk * z.vp,     z.kd * z.vp, 4 * z.chunk};
  int64_t total = 0;
  for (int64_t part : parts) total += round_up(part, kPad);
  return total;
}

Scratch carve(float* base, const Sizes& z) {
  Scratch s{};
  float** slots[] = {&s.x, &s.kt, &s.p, &s.xs, &s.vn, &s.s, &s.gates};
  const int64_t parts[] = {2 * z.chunk * z.kd, z.kd * z.cp, 2 * z.chunk * z.cp, 2 * z.chunk * z.vp,
                           z.chunk * z.vp,     z.kd * z.vp, 4 * z.chunk};
  for (int i = 0; i < 7; ++i) {
    *slots[i] = base;
    base += round_up(parts[i], kPad);
  }
  return s;
}

// Loads chunk rows t0 .. t0 + len of one head into the scratch: keys and scaled queries row-major, K^T with its
// padding columns zero, V with its padding zero, beta and the gates.
void gather(const Problem& p, const Sizes& z, int64_t head, int64_t t0, int64_t len, const Scratch& s) {
  const int64_t kd = z.kd, vd = z.vd;
  float* beta = s.gates;
  for (int64_t i = 0; i < len; ++i) {
    const int64_t row = (t0 + i) * p.heads + head;
    const float* k = p.k + row * kd;
    const float* q = p.q + row * kd;
    std::memcpy(s.x + i * kd, k, static_cast<size_t>(kd) * sizeof(float));
    for (int64_t c = 0; c < kd; ++c) s.x[(len + i) * kd + c] = q[c] * p.scale;
    for (int64_t c = 0; c < kd; ++c) s.kt[c * z.cp + i] = k[c];
    std::memcpy(s.vn + i * z.vp, p.v + row * vd, static_cast<size_t>(vd) * sizeof(float));
    std::fill(s.vn + i * z.vp + vd, s.vn + (i + 1) * z.vp, 0.0f);
    beta[i] = p.beta[row];
  }
  for (int64_t c = 0; c < kd; ++c) std::fill(s.kt + c * z.cp + len, s.kt + (c + 1) * z.cp, 0.0f);
  if (p.g)
    chunk_gates(p.g + t0 * p.heads + head, p.heads, len, s.gates + z.chunk, s.gates + 2 * z.chunk,
                s.gates + 3 * z.chunk);
}

// A = tril(diag(beta) K K^T * decay, -1) in p's first rows and scores * decay (zero above the diagonal, up to cp) in
// the rows from len on, decay_ij = exp(G_i - G_j) (1 for the plain rule).
void weigh(const Problem& p, const Sizes& z, int64_t len, const Scratch& s) {
  const float* beta = s.gates;
  const float* big_g = s.gates + z.chunk;
  for (int64_t i = 0; i < len; ++i) {
    float* a = s.p + i * z.cp;
    float* sc = s.p + (len + i) * z.cp;
    for (int64_t j = 0; j < i; ++j) {
      const float decay = p.g ? std::exp(big_g[i] - big_g[j]) : 1.0f;
      a[j] *= beta[i] * decay;
      sc[j] *= decay;
    }
    std::fill(sc + i + 1, sc + z.cp, 0.0f);
  }
}

// V' = (I + A)^{-1} R in place (R in vn): each block of rows first takes the earlier rows' share in one product,
// then substitutes inside the block.
template <class V>
ACCELKIT_ALWAYS_INLINE void substitute(const Sizes& z, int64_t len, const Scratch& s) {
  constexpr int64_t rows = Tile<V>::rows;
  for (int64_t i0 = 0; i0 < len; i0 += rows) {
    const int64_t r = std::min(rows, len - i0);
    if (i0 > 0) gemm<V>(r, z.vp, i0, s.p + i0 * z.cp, z.cp, s.vn, z.vp, s.vn + i0 * z.vp, z.vp, 1.0f, -1.0f, Tri::none);
    for (int64_t i = i0 + 1; i < i0 + r; ++i)
      for (int64_t j = i0; j < i; ++j) axpy<V>(z.vp, -s.p[i * z.cp + j], s.vn + j * z.vp, s.vn + i * z.vp);
  }
}

// One chunk of `len` tokens starting at row t0: writes its outputs and advances the state in s.s.
template <class V>
ACCELKIT_ALWAYS_INLINE void chunk_step(const Problem& p, const Sizes& z, int64_t head, int64_t t0, int64_t len,
                                       float* o, const Scratch& s) {
  constexpr int64_t w = lanes<V>();
  const int64_t kd = z.kd, cp = z.cp, vp = z.vp;
  const float* beta = s.gates;
  const float* gamma = s.gates + 2 * z.chunk;
  const float* key_factor = s.gates + 3 * z.chunk;
  gather(p, z, head, t0, len, s);
  gemm<V>(len, cp, kd, s.x, kd, s.kt, cp, s.p, cp, 0.0f, 1.0f, Tri::lower_n);  // [L, K] x [K, cp]: K K^T
  gemm<V>(len, cp, kd, s.x + len * kd, kd, s.kt, cp, s.p + len * cp, cp, 0.0f, 1.0f, Tri::lower_n);  // Q K^T
  weigh(p, z, len, s);
  gemm<V>(2 * len, vp, kd, s.x, kd, s.s, vp, s.xs, vp, 0.0f, 1.0f, Tri::none);  // [2L, K] x [K, vp]: K S, Q S
  for (int64_t i = 0; i < len; ++i) {
    const V b = splat<V>(beta[i]), gi = splat<V>(p.g ? gamma[i] : 1.0f);
    float* r = s.vn + i * vp;
    const float* ks = s.xs + i * vp;
    float* qs = s.xs + (len + i) * vp;
    for (int64_t j = 0; j < vp; j += w) {
      store<V>(r + j, b * (load<V>(r + j) - gi * load<V>(ks + j)));
      store<V>(qs + j, gi * load<V>(qs + j));
    }
  }
  substitute<V>(z, len, s);
  // [L, L] x [L, vp]: the scores (lower triangular) times V', onto gamma * Q S.
  gemm<V>(len, vp, len, s.p + len * cp, cp, s.vn, vp, s.xs + len * vp, vp, 1.0f, 1.0f, Tri::lower_k);
  const size_t row_bytes = static_cast<size_t>(z.vd) * sizeof(float);
  for (int64_t i = 0; i < len; ++i)
    std::memcpy(o + ((t0 + i) * p.heads + head) * z.vd, s.xs + (len + i) * vp, row_bytes);
  if (p.g)
    for (int64_t c = 0; c < kd; ++c)
      for (int64_t j = 0; j < len; ++j) s.kt[c * cp + j] *= key_factor[j];
  // [K, L] x [L, vp]: S <- gamma_last S + Kd^T V'.
  const float keep = p.g && len > 0 ? gamma[len - 1] : 1.0f;
  gemm<V>(kd, vp, len, s.kt, cp, s.vn, vp, s.s, vp, keep, 1.0f, Tri::none);
}

template <class V>
ACCELKIT_ALWAYS_INLINE void run_program(const Problem& p, int64_t chunk, int64_t index, float* o, float* ht,
                                        float* scratch) {
  const Sizes z = sizes(p, chunk);
  const Scratch s = carve(scratch, z);
  const int64_t n = index / p.heads, head = index % p.heads, kd = z.kd, vd = z.vd;
  for (int64_t i = 0; i < kd; ++i) {
    float* row = s.s + i * z.vp;
    if (p.h0)
      std::memcpy(row, p.h0 + (index * kd + i) * vd, static_cast<size_t>(vd) * sizeof(float));
    else
      std::fill(row, row + vd, 0.0f);
    std::fill(row + vd, row + z.vp, 0.0f);
  }
  for (int64_t t0 = p.cu[n]; t0 < p.cu[n + 1]; t0 += chunk)
    chunk_step<V>(p, z, head, t0, std::min(chunk, p.cu[n + 1] - t0), o, s);
  for (int64_t i = 0; i < kd; ++i)
    std::memcpy(ht + (index * kd + i) * vd, s.s + i * z.vp, static_cast<size_t>(vd) * sizeof(float));
}

// One program on each instruction set. The OpenMP loop stays outside these: GCC outlines a parallel region before
// it inlines, so a region inside a target("avx512f") function would run in a function without the attribute.
using ProgramFn = void (*)(const Problem&, int64_t, int64_t, float*, float*, float*);

void program_generic(const Problem& p, int64_t chunk, int64_t index, float* o, float* ht, float* scratch) {
  run_program<f32x4>(p, chunk, index, o, ht, scratch);
}

#if ACCELKIT_X86
__attribute__((target("avx2,fma"))) void program_avx2(const Problem& p, int64_t chunk, int64_t index, float* o,
                                                      float* ht, float* scratch) {
  run_program<f32x8>(p, chunk, index, o, ht, scratch);
}

__attribute__((target("avx512f,avx2,fma"))) void program_avx512(const Problem& p, int64_t chunk, int64_t index,
                                                                float* o, float* ht, float* scratch) {
  run_program<f32x16>(p, chunk, index, o, ht, scratch);
}
#endif

ProgramFn program_for(Isa isa) {
#if ACCELKIT_X86
  if (isa == Isa::avx512) return program_avx512;
  if (isa == Isa::avx2) return program_avx2;
#endif
  (void)isa;
  return program_generic;
}

}  // namespace

bool chunk_isa_supported(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
#if ACCELKIT_X86
    case Isa::avx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    default:
      return false;
#endif
  }
  return false;
}

Status chunk_forward(const Problem& p, int64_t chunk, float* o, float* ht, Isa isa, int threads) {
  if (!problem_valid(p, o, ht) || chunk < 1 || chunk > kMaxChunk || threads < 0) return Status::invalid;
  if (!chunk_isa_supported(isa)) return Status::unsupported_isa;
  const int64_t programs = p.sequences * p.heads;
  if (programs == 0) return Status::ok;
#ifdef _OPENMP
  if (threads == 0) threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, programs)));
  const int64_t per_thread = scratch_floats(sizes(p, chunk));
  // Zeroed once: a partial chunk leaves earlier rows in place, which the products never read.
  std::vector<float> scratch(static_cast<size_t>(threads * per_thread + kPad));
  float* base = scratch.data();
  base += (kPad - reinterpret_cast<std::uintptr_t>(base) / sizeof(float) % kPad) % kPad;
  const ProgramFn fn = program_for(isa);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#ifdef _OPENMP
    float* mine = base + omp_get_thread_num() * per_thread;
#else
    float* mine = base;
#endif
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < programs; ++index) fn(p, chunk, index, o, ht, mine);
  }
  return Status::ok;
}

}  // namespace delta_rule
}  // namespace accelkit
