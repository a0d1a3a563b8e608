// Standalone check of csrc/delta_rule.cpp and csrc/delta_rule_chunk.cpp (run under ASan + UBSan by `make sanitize`):
// the token recurrence and the chunk form on every instruction set this CPU has against a double-precision scalar
// loop on edge sizes (K, V of 1 and odd, empty sequences, partial and single-token chunks, chunks of 1, 5, 16 and
// 64, with and without gate and initial state, 1 and 3 threads), and refusal of invalid problems without touching
// the outputs.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "accelkit/delta_rule.h"
#include "check.h"

namespace dr = accelkit::delta_rule;
using accelkit_test::check;

namespace {

struct Inputs {
  std::vector<float> q, k, v, beta, g, h0;
  std::vector<int64_t> cu;
};

Inputs make(const std::vector<int64_t>& lens, int64_t heads, int64_t kd, int64_t vd, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  Inputs in;
  in.cu = {0};
  for (int64_t len : lens) in.cu.push_back(in.cu.back() + len);
  const int64_t rows = in.cu.back();
  auto fill = [&](std::vector<float>& x, int64_t n, bool positive) {
    x.resize(static_cast<size_t>(n));
    for (auto& e : x) e = positive ? unit(gen) : normal(gen);
  };
  fill(in.q, rows * heads * kd, false);
  fill(in.k, rows * heads * kd, false);
  for (int64_t r = 0; r < rows * heads; ++r) {  // unit-norm keys, as DeltaNet uses them
    double norm = 0;
    for (int64_t i = 0; i < kd; ++i) norm += double(in.k[r * kd + i]) * in.k[r * kd + i];
    for (int64_t i = 0; i < kd; ++i) in.k[r * kd + i] = static_cast<float>(in.k[r * kd + i] / std::sqrt(norm + 1e-12));
  }
  fill(in.v, rows * heads * vd, false);
  fill(in.beta, rows * heads, true);
  fill(in.g, rows * heads, true);
  for (auto& e : in.g) e = -e;
  fill(in.h0, static_cast<int64_t>(lens.size()) * heads * kd * vd, false);
  return in;
}

// chunk = 0: the token recurrence (forward); otherwise chunk_forward with that chunk on `isa`.
void run_case(const std::vector<int64_t>& lens, int64_t heads, int64_t kd, int64_t vd, bool gated, bool with_h0,
              int threads, int64_t chunk = 0, accelkit::Isa isa = accelkit::Isa::scalar) {
  const Inputs in = make(lens, heads, kd, vd, static_cast<unsigned>(kd * 31 + vd));
  const int64_t n = static_cast<int64_t>(lens.size()), rows = in.cu.back();
  const float scale = 0.5f;
  dr::Problem p{n, heads, kd, vd, in.cu.data(), in.q.data(), in.k.data(), in.v.data(), in.beta.data(),
                gated ? in.g.data() : nullptr, with_h0 ? in.h0.data() : nullptr, scale};
  std::vector<float> o(static_cast<size_t>(rows * heads * vd), NAN), ht(static_cast<size_t>(n * heads * kd * vd), NAN);
  const dr::Status status = chunk ? dr::chunk_forward(p, chunk, o.data(), ht.data(), isa, threads)
                                  : dr::forward(p, o.data(), ht.data(), threads);
  const std::string where = "K=" + std::to_string(kd) + " V=" + std::to_string(vd) + (gated ? " gated" : "") +
                            " chunk=" + std::to_string(chunk) + " " + accelkit::isa_name(isa);
  check(status == dr::Status::ok, where + ": ok");
  double worst = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> state(static_cast<size_t>(kd * vd), 0.0);
      if (with_h0)
        for (int64_t i = 0; i < kd * vd; ++i) state[i] = in.h0[(s * heads + h) * kd * vd + i];
      for (int64_t t = in.cu[s]; t < in.cu[s + 1]; ++t) {
        const int64_t row = t * heads + h;
        const double decay = gated ? std::exp(double(in.g[row])) : 1.0;
        for (auto& e : state) e *= decay;
        for (int64_t j = 0; j < vd; ++j) {
          double err = in.v[row * vd + j];
          for (int64_t i = 0; i < kd; ++i) err -= in.k[row * kd + i] * state[i * vd + j];
          for (int64_t i = 0; i < kd; ++i) state[i * vd + j] += double(in.beta[row]) * in.k[row * kd + i] * err;
        }
        for (int64_t j = 0; j < vd; ++j) {
          double out = 0;
          for (int64_t i = 0; i < kd; ++i) out += double(scale) * in.q[row * kd + i] * state[i * vd + j];
          worst = std::fmax(worst, std::fabs(out - o[row * vd + j]));
        }
      }
      for (int64_t i = 0; i < kd * vd; ++i)
        worst = std::fmax(worst, std::fabs(state[i] - ht[(s * heads + h) * kd * vd + i]));
    }
  check(worst < 1e-4, where + ": max abs error " + std::to_string(worst));
}

void invalid_problems() {
  const Inputs in = make({3}, 1, 2, 2, 7);
  std::vector<float> o(6, 7.0f), ht(4, 7.0f);
  dr::Problem p{1, 1, 2, 2, in.cu.data(), in.q.data(), in.k.data(), in.v.data(), in.beta.data(), nullptr, nullptr, 1};
  dr::Problem bad = p;
  bad.key_dim = 0;
  check(dr::forward(bad, o.data(), ht.data(), 1) == dr::Status::invalid, "K = 0 refused");
  const std::vector<int64_t> decreasing{0, 5, 3};
  bad = p;
  bad.sequences = 2;
  bad.cu = decreasing.data();
  check(dr::forward(bad, o.data(), ht.data(), 1) == dr::Status::invalid, "decreasing cu refused");
  bad = p;
  bad.q = nullptr;
  check(dr::forward(bad, o.data(), ht.data(), 1) == dr::Status::invalid, "null q refused");
  check(dr::forward(p, o.data(), ht.data(), -1) == dr::Status::invalid, "negative threads refused");
  for (int64_t chunk : {int64_t{0}, int64_t{-3}, dr::kMaxChunk + 1})
    check(dr::chunk_forward(p, chunk, o.data(), ht.data(), accelkit::Isa::scalar, 1) == dr::Status::invalid,
          "chunk " + std::to_string(chunk) + " refused");
  bad = p;
  bad.k = nullptr;
  check(dr::chunk_forward(bad, 4, o.data(), ht.data(), accelkit::Isa::scalar, 1) == dr::Status::invalid,
        "chunk form: null k refused");
  check(dr::chunk_forward(p, 4, o.data(), nullptr, accelkit::Isa::scalar, 1) == dr::Status::invalid,
        "chunk form: null final state refused");
  bool untouched = true;
  for (float x : o) untouched = untouched && x == 7.0f;
  check(untouched, "a refused call writes nothing");
}

}  // namespace

int main() {
  for (int threads : {1, 3})
    for (bool gated : {false, true})
      for (bool with_h0 : {false, true}) {
        run_case({5, 0, 9}, 2, 1, 1, gated, with_h0, threads);
        run_case({17}, 3, 7, 5, gated, with_h0, threads);
        run_case({0}, 1, 4, 3, gated, with_h0, threads);
        run_case({33, 1}, 1, 16, 20, gated, with_h0, threads);
        for (accelkit::Isa isa : {accelkit::Isa::scalar, accelkit::Isa::avx2, accelkit::Isa::avx512}) {
          if (!dr::chunk_isa_supported(isa)) continue;
          run_case({5, 0, 9}, 2, 1, 1, gated, with_h0, threads, 4, isa);
          run_case({17}, 3, 7, 5, gated, with_h0, threads, 5, isa);
          run_case({0}, 1, 4, 3, gated, with_h0, threads, 16, isa);
          run_case({33, 1}, 1, 16, 20, gated, with_h0, threads, 16, isa);
          run_case({70, 64, 1}, 2, 24, 33, gated, with_h0, threads, 64, isa);
          run_case({3}, 1, 2, 3, gated, with_h0, threads, 1, isa);
        }
      }
  invalid_problems();
  return accelkit_test::report("test_delta_rule");
}
