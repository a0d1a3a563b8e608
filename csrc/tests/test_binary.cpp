// Standalone test of the binary bit math (csrc/include/accelkit/binary.h) and the CPU kernels (csrc/binary.cpp)
// against plain scalar loops. No framework and no Python, so `make sanitize` can build it with ASan + UBSan and
// any out-of-bounds access, overflow or use of uninitialised padding in the kernels aborts the run.
//
// Every buffer is a std::vector of exactly the size the kernel may touch, so ASan flags a read or write one
// element past a row or past the output. Sizes sit on the edges of the kernels' tiling: 0, 1, odd, one short and
// one past a 32/64-bit word, the 4-row register tile, the 16-unit zmm vector, the 64-row tile and the 512-unit K
// chunk. Exit status: 0 when every check passes, 1 otherwise (each failure is printed).
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "accelkit/binary.h"

#include "check.h"

namespace ab = accelkit::binary;

namespace {

using accelkit_test::check;

std::string str(int64_t v) { return std::to_string(v); }

// Popcount one bit at a time: independent of the builtins the header uses.
int bits_set(uint64_t x) {
  int n = 0;
  for (int b = 0; b < 64; ++b) n += static_cast<int>((x >> b) & 1u);
  return n;
}

std::vector<ab::Isa> isas() {
  std::vector<ab::Isa> out;
  for (ab::Isa isa : {ab::Isa::scalar, ab::Isa::avx2, ab::Isa::avx512})
    if (ab::isa_supported(isa)) out.push_back(isa);
  return out;
}

void test_header_math(std::mt19937_64& rng) {
  std::vector<uint64_t> values = {0, 1, 2, 3, 0x80000000u, 0xFFFFFFFFu, 0x100000000ull, 0x8000000000000000ull,
                                  ~0ull, 0x5555555555555555ull, 0xAAAAAAAAAAAAAAAAull};
  for (int i = 0; i < 200; ++i) values.push_back(rng());
  for (uint64_t v : values) {
    const auto lo = static_cast<uint32_t>(v);
    check(ab::popcount32(lo) == bits_set(lo), "popcount32(" + str(lo) + ")");
    check(ab::popcount64(v) == bits_set(v), "popcount64(" + std::to_string(v) + ")");
    check(ab::popcount(lo) == bits_set(lo) && ab::popcount(v) == bits_set(v), "popcount overloads");
  }
  for (int word_bits : {32, 64}) {
    for (int64_t k = 0; k <= 300; ++k) {
      int64_t words = 0;
      while (words * word_bits < k) ++words;
      check(ab::num_words(k, word_bits) == words, "num_words(" + str(k) + ", " + str(word_bits) + ")");
    }
    // 2^40 elements: sizes past int32 must not wrap.
    const int64_t big = int64_t(1) << 40;
    check(ab::num_words(big + 1, word_bits) == big / word_bits + 1, "num_words(2^40 + 1)");
  }
  const float nan_f = std::numeric_limits<float>::quiet_NaN();
  const double nan_d = std::numeric_limits<double>::quiet_NaN();
  const float inf_f = std::numeric_limits<float>::infinity();
  check(ab::sign_bit(0.0f) == 0 && ab::sign_bit(-0.0f) == 0 && ab::sign_bit(1e-30f) == 0, "sign_bit of +-0, tiny");
  check(ab::sign_bit(-1e-30f) == 1 && ab::sign_bit(-inf_f) == 1 && ab::sign_bit(inf_f) == 0, "sign_bit of -tiny, inf");
  check(ab::sign_bit(nan_f) == 1 && ab::sign_bit(-nan_f) == 1, "sign_bit(float NaN) is 1");
  check(ab::sign_bit(nan_d) == 1 && ab::sign_bit(-0.0) == 0 && ab::sign_bit(-2.0) == 1, "sign_bit(double)");

  // Dot products of random +-1 rows, K from 0 to 200, against element-by-element sums.
  for (int64_t k = 0; k <= 200; k += (k < 70 ? 1 : 13)) {
    const int64_t words = ab::num_words(k, 64);
    std::vector<uint64_t> a(words, 0), w(words, 0);
    int64_t dot = 0, fired = 0, spike_dot = 0;
    for (int64_t e = 0; e < k; ++e) {
      const uint64_t x = rng() & 1u, y = rng() & 1u;
      a[e / 64] |= x << (e % 64);
      w[e / 64] |= y << (e % 64);
      dot += (x == y) ? 1 : -1;
      fired += static_cast<int64_t>(x);
      spike_dot += x ? (y ? -1 : 1) : 0;
    }
    check(ab::xnor_dot(a.data(), w.data(), words, k) == dot, "xnor_dot<u64> K=" + str(k));
    check(ab::spike_dot(a.data(), w.data(), words) == spike_dot, "spike_dot<u64> K=" + str(k));
    // The same bits as 32-bit words (little-endian halves).
    std::vector<uint32_t> a32(2 * words), w32(2 * words);
    for (int64_t i = 0; i < words; ++i) {
      a32[2 * i] = static_cast<uint32_t>(a[i]);
      a32[2 * i + 1] = static_cast<uint32_t>(a[i] >> 32);
      w32[2 * i] = static_cast<uint32_t>(w[i]);
      w32[2 * i + 1] = static_cast<uint32_t>(w[i] >> 32);
    }
    check(ab::xnor_dot(a32.data(), w32.data(), 2 * words, k) == dot, "xnor_dot<u32> K=" + str(k));
    check(ab::spike_dot(a32.data(), w32.data(), 2 * words) == spike_dot, "spike_dot<u32> K=" + str(k));
    int64_t counted = 0;
    for (uint64_t word : a) counted += bits_set(word);
    check(counted == fired, "packed spike count K=" + str(k));
    if (words > 0) {
      const int valid = static_cast<int>(k - 64 * (words - 1));
      const int64_t last = ab::xnor_dot_word<uint64_t>(a[words - 1], w[words - 1], valid);
      const int64_t rest = words > 1 ? ab::xnor_dot(a.data(), w.data(), words - 1, 64 * (words - 1)) : 0;
      check(last + rest == dot, "xnor_dot_word + xnor_dot K=" + str(k));
    }
  }
}

// Reference packing: unit u of a row holds elements 32u .. 32u + 31 in bits 0 .. 31; a 64-bit word is two units.
template <typename T>
std::vector<uint32_t> pack_reference(const T* x, int64_t rows, int64_t k, int64_t rs, int64_t cs, int word_bits) {
  const int64_t units = ab::num_words(k, word_bits) * (word_bits / 32);
  std::vector<uint32_t> out(rows * units, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c)
      if (!(x[r * rs + c * cs] >= T(0))) out[r * units + c / 32] |= uint32_t(1) << (c % 32);
  return out;
}

struct Strides {
  const char* name;
  int64_t rs, cs;
};

// One source buffer of exactly the elements the strides reach; x points at element (0, 0) inside it.
template <typename T>
void test_pack_case(std::mt19937_64& rng, int64_t rows, int64_t k, const Strides& s, int word_bits) {
  int64_t lo = 0, hi = 0;
  for (int64_t span : {(rows - 1) * s.rs, (k - 1) * s.cs}) (span < 0 ? lo : hi) += span;
  const bool empty = rows == 0 || k == 0;
  std::vector<T> base(empty ? 0 : static_cast<size_t>(hi - lo + 1));
  // Values: +-N(0, 1) with exact zeros, -0.0 and NaN mixed in, the cases where the sign bit and >= 0 disagree.
  std::normal_distribution<double> normal;
  for (auto& v : base) {
    const uint64_t pick = rng() % 16;
    v = pick == 0 ? T(0) : pick == 1 ? T(-0.0) : pick == 2 ? std::numeric_limits<T>::quiet_NaN() : T(normal(rng));
  }
  const T* x = empty ? base.data() : base.data() - lo;
  const std::vector<uint32_t> expected = empty ? std::vector<uint32_t>(rows * ab::num_words(k, word_bits) *
                                                                       (word_bits / 32))
                                               : pack_reference(x, rows, k, s.rs, s.cs, word_bits);
  for (ab::Isa isa : isas()) {
    // Filled with ones, so a word the kernel skips (padding it never writes) shows up as a mismatch.
    std::vector<uint32_t> out(expected.size(), 0xFFFFFFFFu);
    const ab::Status status = sizeof(T) == 4
                                  ? ab::pack_f32(reinterpret_cast<const float*>(x), rows, k, s.rs, s.cs, out.data(),
                                                 word_bits, isa)
                                  : ab::pack_f64(reinterpret_cast<const double*>(x), rows, k, s.rs, s.cs, out.data(),
                                                 word_bits, isa);
    const std::string what = std::string("pack f") + str(8 * sizeof(T)) + " " + ab::isa_name(isa) + " " + s.name +
                             " rows=" + str(rows) + " k=" + str(k) + " word_bits=" + str(word_bits);
    check(status == ab::Status::ok, what + ": status");
    check(out == expected, what + ": bits");
  }
}

template <typename T>
void test_pack(std::mt19937_64& rng) {
  for (int word_bits : {32, 64})
    for (int64_t rows : {0, 1, 2, 3, 5})
      for (int64_t k : {0, 1, 2, 31, 32, 33, 63, 64, 65, 100, 127, 129, 200}) {
        const Strides layouts[] = {
            {"contiguous", k, 1},     {"transposed", 1, rows},   {"every-other", 2 * k, 2}, {"rows-flipped", -k, 1},
            {"cols-flipped", k, -1},  {"broadcast-rows", 0, 1},  {"broadcast-cols", 1, 0},
        };
        for (const Strides& s : layouts) test_pack_case<T>(rng, rows, k, s, word_bits);
      }
  // 300 x 1001: above the 65536-element threshold where packing splits rows across OpenMP threads.
  test_pack_case<T>(rng, 300, 1001, {"threaded", 1001, 1}, 32);
  test_pack_case<T>(rng, 300, 1001, {"threaded-transposed", 1, 300}, 64);
}

// Random packed rows of k elements with the padding bits past k left 0, as pack writes them.
std::vector<uint32_t> random_rows(std::mt19937_64& rng, int64_t rows, int64_t units, int64_t k) {
  std::vector<uint32_t> out(rows * units);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t valid = std::min<int64_t>(32, std::max<int64_t>(0, k - 32 * u));
      const uint32_t mask = valid == 32 ? 0xFFFFFFFFu : (uint32_t(1) << valid) - 1u;
      out[r * units + u] = static_cast<uint32_t>(rng()) & mask;
    }
  return out;
}

void test_gemm_case(std::mt19937_64& rng, int64_t m, int64_t n, int64_t words, int word_bits) {
  const int64_t units = words * (word_bits / 32);
  // The largest k that needs exactly `words` words, and one just past the previous word, both for odd K.
  const int64_t k_max = words * word_bits;
  for (int64_t k : {k_max, words > 0 ? k_max - word_bits + 1 : 0}) {
    const std::vector<uint32_t> a = random_rows(rng, m, units, k), w = random_rows(rng, n, units, k);
    std::vector<int32_t> xnor_ref(m * n), spike_ref(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t differ = 0, fired = 0, both = 0;
        for (int64_t u = 0; u < units; ++u) {
          const uint32_t x = a[i * units + u], y = w[j * units + u];
          differ += bits_set(x ^ y);
          fired += bits_set(x);
          both += bits_set(x & y);
        }
        xnor_ref[i * n + j] = static_cast<int32_t>(k - 2 * differ);
        spike_ref[i * n + j] = static_cast<int32_t>(fired - 2 * both);
      }
    for (ab::Isa isa : isas()) {
      const std::string what = std::string(ab::isa_name(isa)) + " m=" + str(m) + " n=" + str(n) +
                               " words=" + str(words) + "x" + str(word_bits) + " k=" + str(k);
      // Filled with a sentinel so an output element the kernel never writes is a mismatch.
      std::vector<int32_t> out(m * n, std::numeric_limits<int32_t>::min());
      check(ab::xnor_gemm(a.data(), w.data(), m, n, units, k, out.data(), isa) == ab::Status::ok, "xnor " + what);
      check(out == xnor_ref, "xnor_gemm values " + what);
      std::fill(out.begin(), out.end(), std::numeric_limits<int32_t>::min());
      check(ab::spike_gemm(a.data(), w.data(), m, n, units, out.data(), isa) == ab::Status::ok, "spike " + what);
      check(out == spike_ref, "spike_gemm values " + what);
    }
  }
}

void test_gemm(std::mt19937_64& rng) {
  for (int word_bits : {32, 64})
    for (int64_t m : {0, 1, 3, 4, 5, 65})
      for (int64_t n : {0, 1, 4, 5, 7})
        for (int64_t words : {0, 1, 2, 3, 8, 9, 17}) test_gemm_case(rng, m, n, words, word_bits);
  // 70 x 133 x 32 units (1024 bits) = 297920 unit pairs, over the 2^17 where the GEMM goes parallel; 5 x 130 x 313
  // words of 64 bits (20032 bits = 626 units) crosses the 512-unit K chunk, so partial sums carry between chunks.
  test_gemm_case(rng, 70, 133, 32, 32);
  test_gemm_case(rng, 5, 130, 313, 64);
  test_gemm_case(rng, 3, 9, 513, 32);
}

void test_bad_arguments() {
  uint32_t unit = 0;
  int32_t out = 0;
  float x = 1.0f;
  for (ab::Isa isa : isas()) {
    check(ab::xnor_gemm(&unit, &unit, -1, 1, 1, 1, &out, isa) == ab::Status::bad_argument, "xnor m < 0");
    check(ab::xnor_gemm(&unit, &unit, 1, 1, -1, 0, &out, isa) == ab::Status::bad_argument, "xnor units < 0");
    check(ab::xnor_gemm(&unit, &unit, 1, 1, 1, 33, &out, isa) == ab::Status::bad_argument, "xnor k > 32 * units");
    check(ab::xnor_gemm(&unit, &unit, 1, 1, 1, -1, &out, isa) == ab::Status::bad_argument, "xnor k < 0");
    check(ab::xnor_gemm(nullptr, &unit, 1, 1, 1, 1, &out, isa) == ab::Status::bad_argument, "xnor a = null");
    check(ab::xnor_gemm(&unit, &unit, 1, 1, 1, 1, nullptr, isa) == ab::Status::bad_argument, "xnor out = null");
    check(ab::spike_gemm(&unit, nullptr, 1, 1, 1, &out, isa) == ab::Status::bad_argument, "spike w = null");
    check(ab::spike_gemm(&unit, &unit, 1, -2, 1, &out, isa) == ab::Status::bad_argument, "spike n < 0");
    // 2^26 units = 2^31 bits: counts would not fit int32.
    const int64_t huge_units = int64_t(1) << 26;
    check(ab::spike_gemm(&unit, &unit, 1, 1, huge_units, &out, isa) == ab::Status::bad_argument, "spike 2^31 bits");
    check(ab::pack_f32(&x, 1, 1, 1, 1, &unit, 16, isa) == ab::Status::bad_argument, "pack word_bits = 16");
    check(ab::pack_f32(&x, -1, 1, 1, 1, &unit, 32, isa) == ab::Status::bad_argument, "pack rows < 0");
    check(ab::pack_f32(&x, 1, -5, 1, 1, &unit, 32, isa) == ab::Status::bad_argument, "pack k < 0");
    check(ab::pack_f64(nullptr, 1, 1, 1, 1, &unit, 32, isa) == ab::Status::bad_argument, "pack x = null");
  }
  // Nothing was written by the refused calls.
  check(unit == 0 && out == 0, "refused calls left their outputs alone");
}

}  // namespace

int main() {
  // A fixed seed: the same cases every run, so a failure reproduces.
  std::mt19937_64 rng(20260601);
  test_header_math(rng);
  test_pack<float>(rng);
  test_pack<double>(rng);
  test_gemm(rng);
  test_bad_arguments();
  std::string paths;
  for (ab::Isa isa : isas()) paths += std::string(" ") + ab::isa_name(isa);
  return accelkit_test::report("test_binary", " (paths:" + paths + ")");
}
