// Standalone checks of csrc/wkv.cpp and csrc/include/accelkit/wkv.h against a direct double-precision evaluation
// of the closed form y_t = sum_{i<=t} e^{E_ti} v_i / sum_{i<=t} e^{E_ti}, on edge sizes (channels around the
// 32-channel block, T = 0 and 1, empty batches), with the sanitizers of `make sanitize`.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "accelkit/wkv.h"
#include "check.h"

namespace aw = accelkit::wkv;
using accelkit_test::check;

namespace {

struct Case {
  int64_t batch, steps, channels;
  std::vector<double> w, u, k, v, gy;
};

Case make_case(int64_t batch, int64_t steps, int64_t channels, double k_scale, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Case c{batch, steps, channels, {}, {}, {}, {}, {}};
  for (int64_t i = 0; i < channels; ++i) {
    c.w.push_back(-std::exp(normal(gen)));
    c.u.push_back(normal(gen));
  }
  for (int64_t i = 0; i < batch * steps * channels; ++i) {
    c.k.push_back(k_scale * normal(gen));
    c.v.push_back(normal(gen));
    c.gy.push_back(normal(gen));
  }
  return c;
}

// The weights of v_0..v_t in output t of one channel, and their ages (t - 1 - i, 0 at i = t).
std::vector<double> weights(const Case& c, int64_t b, int64_t t, int64_t ch) {
  std::vector<double> e(static_cast<size_t>(t + 1));
  double top = -INFINITY;
  for (int64_t i = 0; i <= t; ++i) {
    const double ki = c.k[(b * c.steps + i) * c.channels + ch];
    e[i] = i == t ? c.u[ch] + ki : static_cast<double>(t - 1 - i) * c.w[ch] + ki;
    top = std::max(top, e[i]);
  }
  double sum = 0.0;
  for (auto& x : e) sum += (x = std::exp(x - top));
  for (auto& x : e) x /= sum;
  return e;
}

// Closed-form y and the gradients of sum(gy * y): dy_t/dv_i = pi_ti, dy_t/dE_ti = pi_ti (v_i - y_t).
void closed_form(const Case& c, std::vector<double>& y, std::vector<double>& gk, std::vector<double>& gv,
                 std::vector<double>& gw, std::vector<double>& gu) {
  const size_t n = c.k.size();
  y.assign(n, 0.0);
  gk.assign(n, 0.0);
  gv.assign(n, 0.0);
  gw.assign(static_cast<size_t>(c.channels), 0.0);
  gu.assign(static_cast<size_t>(c.channels), 0.0);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t ch = 0; ch < c.channels; ++ch)
      for (int64_t t = 0; t < c.steps; ++t) {
        const auto pi = weights(c, b, t, ch);
        const auto at = [&](int64_t i) { return (b * c.steps + i) * c.channels + ch; };
        double yt = 0.0;
        for (int64_t i = 0; i <= t; ++i) yt += pi[i] * c.v[at(i)];
        y[at(t)] = yt;
        const double g = c.gy[at(t)];
        for (int64_t i = 0; i <= t; ++i) {
          const double d = g * pi[i] * (c.v[at(i)] - yt);
          gv[at(i)] += g * pi[i];
          gk[at(i)] += d;
          if (i == t) gu[ch] += d;
          else gw[ch] += d * static_cast<double>(t - 1 - i);
        }
      }
}

template <class T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <class T>
bool near(double got, double want, double tol) {
  return std::fabs(got - want) <= tol * (1.0 + std::fabs(want));
}

template <class T>
void check_case(const Case& c, double tol, const std::string& what) {
  std::vector<double> y, gk, gv, gw, gu;
  closed_form(c, y, gk, gv, gw, gu);
  const auto w = cast<T>(c.w), u = cast<T>(c.u), k = cast<T>(c.k), v = cast<T>(c.v), gy = cast<T>(c.gy);
  const aw::Problem<T> pr{c.batch, c.steps, c.channels, w.data(), u.data(), k.data(), v.data()};
  std::vector<T> y_out(k.size()), gk_out(k.size()), gv_out(k.size());
  std::vector<T> gw_out(static_cast<size_t>(c.batch * c.channels)), gu_out(gw_out.size());
  for (int threads : {1, 3}) {
    const std::string tag = what + " threads=" + std::to_string(threads);
    check(aw::forward(pr, y_out.data(), threads) == aw::Status::ok, "forward status " + tag);
    bool ok = true;
    for (size_t i = 0; i < y.size(); ++i) ok = ok && near<T>(y_out[i], y[i], tol);
    check(ok, "forward values " + tag);
    check(aw::backward(pr, gy.data(), gk_out.data(), gv_out.data(), gw_out.data(), gu_out.data(), threads) ==
              aw::Status::ok,
          "backward status " + tag);
    ok = true;
    for (size_t i = 0; i < gk.size(); ++i) ok = ok && near<T>(gk_out[i], gk[i], tol) && near<T>(gv_out[i], gv[i], tol);
    check(ok, "backward gk/gv " + tag);
    ok = true;
    for (int64_t ch = 0; ch < c.channels; ++ch) {
      double sw = 0.0, su = 0.0;
      for (int64_t b = 0; b < c.batch; ++b) {
        sw += gw_out[b * c.channels + ch];
        su += gu_out[b * c.channels + ch];
      }
      ok = ok && near<T>(sw, gw[ch], 4 * tol) && near<T>(su, gu[ch], 4 * tol);
    }
    check(ok, "backward gw/gu " + tag);
  }
}

void check_bad_arguments() {
  float x = 0.0f;
  const aw::Problem<float> negative{1, -1, 1, &x, &x, &x, &x};
  check(aw::forward(negative, &x, 1) == aw::Status::bad_argument, "steps < 0");
  const aw::Problem<float> no_k{1, 1, 1, &x, &x, nullptr, &x};
  check(aw::forward(no_k, &x, 1) == aw::Status::bad_argument, "k = null");
  const aw::Problem<float> ok{1, 1, 1, &x, &x, &x, &x};
  check(aw::forward(ok, nullptr, 1) == aw::Status::bad_argument, "y = null");
  check(aw::backward(ok, &x, &x, &x, nullptr, &x, 1) == aw::Status::bad_argument, "gw = null");
  const aw::Problem<float> empty{0, 5, 3, &x, &x, nullptr, nullptr};
  check(aw::forward(empty, nullptr, 1) == aw::Status::ok, "empty batch");
}

void check_exp_nonpos() {
  check(aw::exp_nonpos(0.0f) == 1.0f, "exp(0)");
  check(aw::exp_nonpos(-INFINITY) == 0.0f, "exp(-inf)");
  check(aw::exp_nonpos(-100.0f) == 0.0f, "exp(-100) flushes to 0");
  bool ok = true;
  for (float x = -87.0f; x <= 0.0f; x += 0.01f) ok = ok && near<float>(aw::exp_nonpos(x), std::exp(double(x)), 4e-7);
  check(ok, "exp_nonpos within 4e-7 relative on [-87, 0]");
}

}  // namespace

int main() {
  unsigned seed = 1;
  for (int64_t batch : {0, 1, 2})
    for (int64_t steps : {0, 1, 7})
      for (int64_t channels : {1, 31, 32, 33, 65}) {
        const std::string what = "B=" + std::to_string(batch) + " T=" + std::to_string(steps) +
                                 " C=" + std::to_string(channels);
        const Case c = make_case(batch, steps, channels, 1.5, seed++);
        check_case<double>(c, 1e-11, "double " + what);
        check_case<float>(c, 2e-5, "float " + what);
      }
  // k = +-60 u = N(0,1): e^{u + k} alone overflows float32; the offsets keep every term finite.
  check_case<float>(make_case(2, 20, 40, 30.0, 99), 1e-3, "float large exponents");
  check_case<double>(make_case(2, 20, 40, 30.0, 99), 1e-9, "double large exponents");
  check_bad_arguments();
  check_exp_nonpos();
  return accelkit_test::report("test_wkv");
}
