// Standalone checks of csrc/text_rows.cpp against snprintf("%lld"): int64's ends, digit-count edges, empty shapes,
// padding and negative strides, each written into a buffer of exactly max_text_bytes bytes so that AddressSanitizer
// catches any write past the bound. And csrc/trace_words.cpp (the traces' other native helper) against a quadratic
// scan, on addresses at int64's ends and bad bounds.
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "accelkit/text_rows.h"
#include "accelkit/trace_words.h"
#include "check.h"

namespace atr = accelkit::text_rows;
namespace atw = accelkit::trace_words;
using accelkit_test::check;

namespace {

std::string expected_text(const atr::RowsView& v) {
  std::string out;
  char buf[64];
  for (int64_t i = 0; i < v.rows; ++i) {
    std::vector<int64_t> row;
    if (v.lead != nullptr) row.push_back(v.lead[i * v.lead_stride]);
    for (int64_t j = 0; j < v.cols; ++j) row.push_back(v.body[i * v.row_stride + j * v.col_stride]);
    for (int64_t j = v.cols; j < v.width; ++j) row.push_back(v.pad_value);
    for (size_t j = 0; j < row.size(); ++j) {
      std::snprintf(buf, sizeof(buf), "%s%" PRId64 "%s", j ? "," : "", row[j], v.float_suffix ? ".0" : "");
      out += buf;
    }
    out += '\n';
  }
  return out;
}

void check_view(const atr::RowsView& v, const std::string& what) {
  const int64_t bound = atr::max_text_bytes(v);
  check(bound >= 0, what + ": bound");
  // Exactly `bound` bytes on the heap (at least one, so data() is a real allocation).
  std::vector<char> out(static_cast<size_t>(bound > 0 ? bound : 1));
  const int64_t n = atr::format_rows(v, out.data());
  check(n >= 0 && n <= bound, what + ": length within the bound");
  check(std::string(out.data(), static_cast<size_t>(n)) == expected_text(v), what + ": text");
}

std::vector<int64_t> edge_values() {
  std::vector<int64_t> vals = {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1,
                               std::numeric_limits<int64_t>::max(), -1, 0, 1};
  int64_t p = 1;
  for (int k = 0; k < 18; ++k) {
    p *= 10;
    for (int64_t d : {-1, 0, 1}) {
      vals.push_back(p + d);
      vals.push_back(-(p + d));
    }
  }
  return vals;
}

// Segment by segment, each request whose address is not earlier in its segment: the definition, O(n^2).
std::vector<int64_t> expected_new(const std::vector<int64_t>& addr, const std::vector<int64_t>& bounds) {
  std::vector<int64_t> out;
  for (size_t s = 0; s + 1 < bounds.size(); ++s)
    for (int64_t j = bounds[s]; j < bounds[s + 1]; ++j) {
      bool seen = false;
      for (int64_t i = bounds[s]; i < j; ++i) seen = seen || addr[i] == addr[j];
      if (!seen) out.push_back(addr[j]);
    }
  return out;
}

void check_new_words(const std::vector<int64_t>& addr, const std::vector<int64_t>& bounds, int64_t lo,
                     const std::string& what) {
  const auto n = static_cast<int64_t>(addr.size());
  const auto segments = static_cast<int64_t>(bounds.size()) - 1;
  int64_t hi = lo;
  for (int64_t a : addr) hi = std::max(hi, a);
  std::vector<int64_t> stamp(static_cast<size_t>(static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1));
  std::vector<int64_t> out(addr.size() + 1), ends(bounds.size());
  const bool ok =
      atw::new_words(addr.data(), n, bounds.data(), segments, lo, hi, stamp.data(), out.data(), ends.data());
  check(ok, what + ": accepted");
  const int64_t count = segments > 0 ? ends[static_cast<size_t>(segments - 1)] : 0;
  check(std::vector<int64_t>(out.begin(), out.begin() + count) == expected_new(addr, bounds), what + ": words");
}

}  // namespace

int main() {
  const std::vector<int64_t> edges = edge_values();
  // One row per edge value, with a lead and a pad, with and without the suffix.
  for (bool suffix : {false, true}) {
    const int64_t rows = static_cast<int64_t>(edges.size());
    atr::RowsView v{edges.data(), 1, edges.data(), rows, 1, 1, 1, 3, -7, suffix};
    check_view(v, std::string("edges") + (suffix ? " .0" : ""));
  }
  // Random matrices walked backwards (negative strides) and column-major, 0 to 5 rows and 0 to 4 columns.
  std::mt19937_64 gen(7);
  for (int64_t rows = 0; rows <= 5; ++rows) {
    for (int64_t cols = 0; cols <= 4; ++cols) {
      std::vector<int64_t> data(static_cast<size_t>(rows * cols + 1));
      for (auto& x : data) x = static_cast<int64_t>(gen());
      const std::string name = std::to_string(rows) + "x" + std::to_string(cols);
      check_view({nullptr, 0, data.data(), rows, cols, cols, 1, cols, 1, false}, name + " row-major");
      check_view({nullptr, 0, data.data(), rows, cols, 1, rows, cols + 2, 1, true}, name + " column-major padded");
      if (rows > 0 && cols > 0) {
        const int64_t* last = data.data() + rows * cols - 1;
        check_view({last, -1, last, rows, cols, -cols, -1, cols, 1, true}, name + " reversed");
      }
    }
  }
  // A width below the column count still writes every column, inside the bound.
  const std::vector<int64_t> wide = {INT64_MIN, INT64_MIN, INT64_MIN};
  check_view({nullptr, 0, wide.data(), 1, 3, 3, 1, 1, 1, true}, "width below cols");
  // Counts whose text would not fit in int64 are refused, not wrapped.
  const int64_t one = 1;
  check(atr::max_text_bytes({nullptr, 0, &one, 1, 1, 1, 1, INT64_MAX / 2, 1, false}) == -1, "huge width");
  check(atr::max_text_bytes({nullptr, 0, &one, INT64_MAX / 4, 1, 1, 1, 1, 1, false}) == -1, "huge rows");
  check(atr::max_text_bytes({nullptr, 0, &one, -1, 1, 1, 1, 1, 1, false}) == -1, "negative rows");
  // CALC prefetch words: random streams over a few words near int64's ends, random cuts.
  for (int64_t lo : {std::numeric_limits<int64_t>::min(), int64_t{-3}, std::numeric_limits<int64_t>::max() - 6}) {
    for (int64_t n = 0; n <= 40; n += 7) {
      std::vector<int64_t> addr(static_cast<size_t>(n));
      for (auto& a : addr) a = lo + static_cast<int64_t>(gen() % 7);
      std::vector<int64_t> bounds = {0};
      for (int64_t cut = 0; cut < n; cut += 1 + static_cast<int64_t>(gen() % 9)) bounds.push_back(cut);
      bounds.push_back(n);
      check_new_words(addr, bounds, lo, "new_words n=" + std::to_string(n) + " lo=" + std::to_string(lo));
    }
  }
  // Bad bounds and out-of-range addresses are refused before any write.
  const std::vector<int64_t> addr = {1, 2, 3};
  std::vector<int64_t> stamp(3), out(3), ends(2);
  const std::vector<int64_t> falling = {0, 2, 1, 3}, short_end = {0, 2}, ok_bounds = {0, 3};
  check(!atw::new_words(addr.data(), 3, falling.data(), 3, 1, 3, stamp.data(), out.data(), ends.data()), "falling");
  check(!atw::new_words(addr.data(), 3, short_end.data(), 1, 1, 3, stamp.data(), out.data(), ends.data()), "short");
  check(!atw::new_words(addr.data(), 3, ok_bounds.data(), 1, 2, 3, stamp.data(), out.data(), ends.data()), "below min");
  // Set orders: groups of 5 in a 16-slot table (last group of 2 in an 8-slot one). Group 0 is collision-free
  // (22 -> slot 6, 20 -> slot 4: 1, 2, 3, 20, 22), group 1 shares slot 0 (16 and 32), group 2 holds
  // a negative word, group 3 a word of 2^61 - 1 (hash 0), group 4 is free again and the last group of two is free.
  const std::vector<int64_t> words = {3, 22, 20, 2, 1, 16, 32, 5, 6, 7, -1, 8, 9, 10, 11,
                                      (int64_t{1} << 61) - 1, 1, 2, 3, 4, 30, 29, 28, 27, 26, 9, 14};
  const auto wn = static_cast<int64_t>(words.size());
  std::vector<int64_t> set_table(16), ordered(words.size(), -7);
  std::vector<uint8_t> clash(6, 9);
  check(atw::set_orders(words.data(), wn, 5, 16, 8, set_table.data(), ordered.data(), clash.data()), "set_orders ok");
  check((clash == std::vector<uint8_t>{0, 1, 1, 1, 0, 0}), "set_orders clash flags");
  check((std::vector<int64_t>(ordered.begin(), ordered.begin() + 5) == std::vector<int64_t>{1, 2, 3, 20, 22}),
        "set_orders group 0");
  check((std::vector<int64_t>(ordered.begin() + 20, ordered.end()) == std::vector<int64_t>{26, 27, 28, 29, 30, 9, 14}),
        "set_orders groups 4 and 5 (14 -> slot 6, 9 -> slot 1)");
  check(!atw::set_orders(words.data(), wn, 0, 16, 8, set_table.data(), ordered.data(), clash.data()), "size 0");
  check(!atw::set_orders(words.data(), wn, 5, 12, 8, set_table.data(), ordered.data(), clash.data()), "slots 12");
  return accelkit_test::report("test_text_rows");
}
