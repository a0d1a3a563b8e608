// Standalone test of the decode attention math (csrc/include/accelkit/attention.h) and the CPU kernel
// (csrc/attention_decode.cpp) against double-precision loops. No framework and no Python, so `make sanitize` builds
// it with ASan + UBSan: every buffer is a std::vector of exactly the size the kernel may touch, so a read one row
// past a page, a sequence or the output aborts the run.
//
// Sizes sit on the kernel's edges: empty and one-key sequences, the 64-key chunk and one past it, T_q of 1 to 16,
// head dims below, at and past the 4/8/16-lane vectors, GQA groups, more programs than LeanTiles, pages of one key.
// Exit status: 0 when every check passes, 1 otherwise (each failure is printed).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "accelkit/attention.h"

#include "check.h"

namespace at = accelkit::attention;

namespace {

using accelkit_test::check;

std::string str(double v) { return std::to_string(v); }

const float kInf = std::numeric_limits<float>::infinity();

void test_exp() {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 200000.0f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(at::exp_neg(x) - want) / want);
  }
  // A few float32 ulps (2^-23 = 1.2e-7 each): the reduction, the polynomial and the final product each round once.
  check(worst < 4e-7, "exp_neg relative error " + str(worst) + " >= 4e-7 on [-87, 0]");
  check(at::exp_neg(0.0f) == 1.0f, "exp_neg(0) = 1");
  check(at::exp_neg(-87.5f) == 0.0f && at::exp_neg(-1000.0f) == 0.0f, "exp_neg flushes below -87 to 0");
  check(at::exp_neg(-kInf) == 0.0f, "exp_neg(-inf) = 0");
  check(std::isnan(at::exp_neg(std::nanf(""))), "exp_neg(NaN) is NaN");
}

void test_scalars() {
  check(at::bf16_to_float(0x3F80) == 1.0f && at::bf16_to_float(0xC000) == -2.0f, "bf16 1 and -2");
  check(at::bf16_to_float(0xFF80) == -kInf && std::isnan(at::bf16_to_float(0x7FC0)), "bf16 -inf and NaN");
  check(at::bf16_to_float(0x0001) > 0.0f && at::bf16_to_float(0x0001) < 1e-38f, "bf16 subnormal");
  // visible_keys(length, T_q, t) = clamp(length - T_q + t + 1, 0, length).
  check(at::visible_keys(10, 1, 0) == 10 && at::visible_keys(10, 3, 0) == 8 && at::visible_keys(10, 3, 2) == 10,
        "visible_keys inside the cache");
  check(at::visible_keys(2, 5, 0) == 0 && at::visible_keys(2, 5, 3) == 1 && at::visible_keys(0, 1, 0) == 0,
        "visible_keys of a chunk longer than the cache");
  at::RowState s = at::empty_row();
  check(at::row_lse(s) == -kInf && at::output_scale(s) == 0.0f, "empty row: lse -inf, output 0");
  check(at::fold(s, -kInf) == 1.0f && s.m == -kInf && s.l == 0.0f, "folding an all-masked block changes nothing");
  check(at::rescale(-kInf, 3.0f) == 0.0f && at::rescale(-kInf, -kInf) == 0.0f, "rescale of an empty state is 0");
  // Online folding of three blocks equals the direct log-sum-exp.
  const std::vector<std::vector<float>> blocks = {{0.5f, -1.0f}, {3.0f}, {-2.0f, 2.5f, 1.0f}};
  double direct = 0.0;
  s = at::empty_row();
  for (const auto& block : blocks) {
    float top = -kInf;
    for (float x : block) top = std::max(top, x);
    at::fold(s, top);
    for (float x : block) {
      s.l += at::exp_neg(x - s.m);
      direct += std::exp(static_cast<double>(x));
    }
  }
  check(std::fabs(at::row_lse(s) - std::log(direct)) < 1e-6, "online lse " + str(at::row_lse(s)));
}

void test_combine() {
  float w[4];
  const float all_empty[3] = {-kInf, -kInf, -kInf};
  const float lse_empty = at::combine_weights(all_empty, 3, 1, w);
  check(lse_empty == -kInf && w[0] == 0.0f && w[1] == 0.0f && w[2] == 0.0f, "combine of empty pieces");
  check(at::combine_weights(all_empty, 0, 1, w) == -kInf, "combine of no pieces");
  // Strided: lse values sit every 2 floats, as rows of a piece buffer do.
  const float lse[8] = {1.0f, 99.0f, -kInf, 99.0f, -3.0f, 99.0f, 1.0f, 99.0f};
  const float merged = at::combine_weights(lse, 4, 2, w);
  const double want = std::log(std::exp(1.0) + std::exp(-3.0) + std::exp(1.0));
  check(std::fabs(merged - want) < 1e-6, "combined lse " + str(merged));
  check(w[1] == 0.0f && std::fabs(w[0] + w[2] + w[3] - 1.0f) < 1e-6f && w[0] == w[3], "combine weights");
}

// --- the kernel --------------------------------------------------------------------------------------------------

struct Schedule {
  std::vector<int64_t> tile_offsets, program_starts, first_program, num_pieces, piece_offsets;
};

// The piece arrays of a partition, by intersecting every program range with every tile (test-sized loops).
void add_pieces(Schedule& s) {
  const int64_t tiles = static_cast<int64_t>(s.tile_offsets.size()) - 1;
  const int64_t programs = static_cast<int64_t>(s.program_starts.size()) - 1;
  s.first_program.assign(tiles, 0);
  s.num_pieces.assign(tiles, 0);
  s.piece_offsets.assign(tiles + 1, 0);
  for (int64_t o = 0; o < tiles; ++o) {
    int64_t first = -1;
    for (int64_t p = 0; p < programs; ++p) {
      const int64_t lo = std::max(s.tile_offsets[o], s.program_starts[p]);
      const int64_t hi = std::min(s.tile_offsets[o + 1], s.program_starts[p + 1]);
      if (lo >= hi) continue;
      if (first < 0) first = p;
      ++s.num_pieces[o];
    }
    s.first_program[o] = first < 0 ? 0 : first;
    s.piece_offsets[o + 1] = s.piece_offsets[o] + s.num_pieces[o];
  }
}

std::vector<int64_t> tile_offsets(const std::vector<int64_t>& lengths, int64_t h_kv, int64_t block_n) {
  std::vector<int64_t> offsets = {0};
  for (int64_t length : lengths)
    for (int64_t h = 0; h < h_kv; ++h) offsets.push_back(offsets.back() + (length + block_n - 1) / block_n);
  return offsets;
}

// Stream-K: P ranges whose sizes differ by at most one LeanTile, the larger first.
Schedule stream_k(const std::vector<int64_t>& lengths, int64_t h_kv, int64_t block_n, int64_t programs) {
  Schedule s;
  s.tile_offsets = tile_offsets(lengths, h_kv, block_n);
  const int64_t total = s.tile_offsets.back();
  for (int64_t p = 0; p <= programs; ++p) s.program_starts.push_back(p * (total / programs) + std::min(p, total % programs));
  add_pieces(s);
  return s;
}

// Split-KV: every tile cut into `splits` ranges, one program each.
Schedule split_kv(const std::vector<int64_t>& lengths, int64_t h_kv, int64_t block_n, int64_t splits) {
  Schedule s;
  s.tile_offsets = tile_offsets(lengths, h_kv, block_n);
  s.program_starts = {0};
  for (size_t o = 0; o + 1 < s.tile_offsets.size(); ++o) {
    const int64_t n = s.tile_offsets[o + 1] - s.tile_offsets[o];
    for (int64_t i = 0; i < splits; ++i) s.program_starts.push_back(s.program_starts.back() + n / splits + (i < n % splits));
  }
  add_pieces(s);
  return s;
}

struct Case {
  std::vector<int64_t> lengths;
  int64_t t_q, h_kv, group, d, block_n, programs;
  int64_t page_size;  // 0: contiguous cache
  bool bf16, split;
};

uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return static_cast<uint16_t>(bits >> 16);  // truncation: any bf16 value will do, the reference widens it back
}

void run_case(const Case& c, std::mt19937& rng, at::Isa isa, int threads) {
  const int64_t batch = static_cast<int64_t>(c.lengths.size()), h_q = c.h_kv * c.group, d = c.d;
  int64_t t_cache = 1;
  for (int64_t l : c.lengths) t_cache = std::max(t_cache, l);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Logical cache [B, t_cache, H_kv, D] as floats (bf16-representable when bf16), then laid out as the kernel reads it.
  std::vector<float> q(batch * c.t_q * h_q * d), k(batch * t_cache * c.h_kv * d), v(k.size());
  for (float& x : q) x = normal(rng);
  for (auto* buf : {&k, &v})
    for (float& x : *buf) x = c.bf16 ? at::bf16_to_float(to_bf16(normal(rng))) : normal(rng);
  const int64_t rows = c.page_size ? c.page_size : t_cache;
  const int64_t per_seq = (t_cache + rows - 1) / rows;
  const int64_t pages = c.page_size ? batch * per_seq : batch;
  std::vector<int32_t> table(c.page_size ? batch * per_seq : 0);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(table.size() - 1 - i);  // reversed
  std::vector<float> kf(pages * rows * c.h_kv * d, std::nanf("")), vf(kf.size(), std::nanf(""));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < t_cache; ++j) {
      const int64_t page = c.page_size ? table[b * per_seq + j / rows] : b, slot = j % rows;
      for (int64_t x = 0; x < c.h_kv * d; ++x) {
        kf[(page * rows + slot) * c.h_kv * d + x] = k[(b * t_cache + j) * c.h_kv * d + x];
        vf[(page * rows + slot) * c.h_kv * d + x] = v[(b * t_cache + j) * c.h_kv * d + x];
      }
    }
  std::vector<uint16_t> kh(c.bf16 ? kf.size() : 0), vh(kh.size());
  for (size_t i = 0; i < kh.size(); ++i) {
    kh[i] = to_bf16(kf[i]);
    vh[i] = to_bf16(vf[i]);
  }
  const Schedule s = c.split ? split_kv(c.lengths, c.h_kv, c.block_n, c.programs)
                             : stream_k(c.lengths, c.h_kv, c.block_n, c.programs);
  std::vector<float> out(q.size(), std::nanf("")), lse(batch * h_q * c.t_q, std::nanf(""));
  at::DecodeProblem pr;
  pr.batch = batch;
  pr.t_q = c.t_q;
  pr.h_q = h_q;
  pr.h_kv = c.h_kv;
  pr.head_dim = d;
  pr.scale = 0.3f;
  pr.q = q.data();
  const int64_t qs[4] = {c.t_q * h_q * d, h_q * d, d, 1};
  for (int i = 0; i < 4; ++i) pr.q_stride[i] = qs[i];
  pr.k = c.bf16 ? static_cast<const void*>(kh.data()) : kf.data();
  pr.v = c.bf16 ? static_cast<const void*>(vh.data()) : vf.data();
  pr.cache_type = c.bf16 ? at::CacheType::bf16 : at::CacheType::f32;
  const int64_t ks[3] = {rows * c.h_kv * d, c.h_kv * d, d};
  for (int i = 0; i < 3; ++i) pr.k_stride[i] = pr.v_stride[i] = ks[i];
  pr.cache_rows = rows;
  pr.num_pages = pages;
  pr.block_table = c.page_size ? table.data() : nullptr;
  pr.block_table_stride[0] = per_seq;
  pr.block_table_stride[1] = 1;
  pr.max_blocks = per_seq;
  pr.seqlens = c.lengths.data();
  pr.block_n = c.block_n;
  pr.num_programs = static_cast<int64_t>(s.program_starts.size()) - 1;
  pr.tile_offsets = s.tile_offsets.data();
  pr.program_starts = s.program_starts.data();
  pr.first_program = s.first_program.data();
  pr.num_pieces = s.num_pieces.data();
  pr.piece_offsets = s.piece_offsets.data();
  pr.out = out.data();
  pr.lse = lse.data();
  const std::string name = std::string(at::isa_name(isa)) + (c.bf16 ? " bf16" : " f32") + (c.split ? " split" : " lean") +
                           " T_q=" + std::to_string(c.t_q) + " H_kv=" + std::to_string(c.h_kv) + " G=" +
                           std::to_string(c.group) + " D=" + std::to_string(d) + " P=" + std::to_string(c.programs) +
                           " page=" + std::to_string(c.page_size) + " threads=" + std::to_string(threads);
  check(at::decode_attention(pr, isa, threads) == at::Status::ok, name + ": status");
  // Double-precision reference per (b, t, query head).
  double worst_out = 0.0, worst_lse = 0.0;
  bool pattern_ok = true;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < c.t_q; ++t)
      for (int64_t hq = 0; hq < h_q; ++hq) {
        const int64_t h = hq / c.group, seen = at::visible_keys(c.lengths[b], c.t_q, t);
        const float* qr = &q[((b * c.t_q + t) * h_q + hq) * d];
        std::vector<double> score(seen);
        double top = -1e300;
        for (int64_t j = 0; j < seen; ++j) {
          double dot = 0.0;
          for (int64_t x = 0; x < d; ++x) dot += double(0.3f * qr[x]) * k[((b * t_cache + j) * c.h_kv + h) * d + x];
          score[j] = dot;
          top = std::max(top, dot);
        }
        double total = 0.0;
        std::vector<double> o(d, 0.0);
        for (int64_t j = 0; j < seen; ++j) {
          const double p = std::exp(score[j] - top);
          total += p;
          for (int64_t x = 0; x < d; ++x) o[x] += p * v[((b * t_cache + j) * c.h_kv + h) * d + x];
        }
        const float got_lse = lse[(b * h_q + hq) * c.t_q + t];
        const float* got = &out[((b * c.t_q + t) * h_q + hq) * d];
        if (seen == 0) {
          pattern_ok &= got_lse == -kInf;
          for (int64_t x = 0; x < d; ++x) pattern_ok &= got[x] == 0.0f;
          continue;
        }
        worst_lse = std::max(worst_lse, std::fabs(got_lse - (top + std::log(total))));
        for (int64_t x = 0; x < d; ++x) worst_out = std::max(worst_out, std::fabs(got[x] - o[x] / total));
      }
  check(pattern_ok, name + ": queries that see no key must give output 0 and lse -inf");
  // Values are N(0, 1) and scores O(1): float32 accumulation over at most a few hundred keys stays near 1e-6.
  check(worst_out < 2e-5 && worst_lse < 2e-5, name + ": max error out " + str(worst_out) + " lse " + str(worst_lse));
}

void test_kernel(std::mt19937& rng) {
  std::vector<at::Isa> isas;
  for (at::Isa isa : {at::Isa::scalar, at::Isa::avx2, at::Isa::avx512})
    if (at::isa_supported(isa)) isas.push_back(isa);
  const std::vector<std::vector<int64_t>> batches = {{1}, {0, 65}, {64, 2, 0, 130}, {17, 200}};
  int n = 0;
  for (at::Isa isa : isas)
    for (const auto& lengths : batches)
      for (int64_t t_q : {1, 2, 5, 16})
        for (int64_t d : {1, 3, 16, 17, 33, 128}) {
          ++n;
          const int64_t h_kv = 1 + n % 3, group = 1 + (n / 3) % 3;
          const int64_t programs = std::vector<int64_t>{1, 2, 7, 100}[n % 4];
          const int64_t page = std::vector<int64_t>{0, 1, 3, 16}[(n / 4) % 4];
          const Case c{lengths, t_q, h_kv, group, d, n % 2 ? 16 : 5, programs, page, n % 5 == 0, n % 7 == 0};
          run_case(c, rng, isa, n % 2 ? 3 : 1);
        }
}

void test_bad_arguments() {
  at::DecodeProblem pr;
  pr.batch = 1;
  pr.t_q = 1;
  pr.h_q = 3;
  pr.h_kv = 2;
  pr.block_n = 4;
  pr.num_programs = 1;
  check(at::decode_attention(pr, at::Isa::scalar, 1) == at::Status::bad_argument, "H_q not a multiple of H_kv");
  pr.h_q = 2;
  check(at::decode_attention(pr, at::Isa::scalar, 1) == at::Status::bad_argument, "null pointers");
  pr.block_n = 0;
  check(at::decode_attention(pr, at::Isa::scalar, 1) == at::Status::bad_argument, "block_n = 0");
  pr.block_n = 4;
  pr.batch = 0;
  check(at::decode_attention(pr, at::Isa::scalar, 1) == at::Status::ok, "an empty batch is fine");
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  test_exp();
  test_scalars();
  test_combine();
  test_kernel(rng);
  test_bad_arguments();
  return accelkit_test::report("test_attention");
}
