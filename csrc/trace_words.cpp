// CALC prefetch words (see accelkit/trace_words.h): one pass with a per-address stamp of the last segment that read
// it, O(n + span), where the NumPy version sorts the whole stream (O(n log n), about 0.3 s per 10^7 requests).
#include "accelkit/trace_words.h"

namespace accelkit::trace_words {

bool new_words(const int64_t* addr, int64_t n, const int64_t* bounds, int64_t segments, int64_t min, int64_t max,
               int64_t* stamp, int64_t* out, int64_t* ends) {
  if (n < 0 || segments < 0 || max < min || bounds[0] != 0 || bounds[segments] != n) return false;
  for (int64_t s = 0; s < segments; ++s)
    if (bounds[s + 1] < bounds[s]) return false;
  for (int64_t j = 0; j < n; ++j)
    if (addr[j] < min || addr[j] > max) return false;
  // max - min fits in uint64 for any int64 pair; the caller sized `stamp` from it.
  const auto span = static_cast<uint64_t>(max) - static_cast<uint64_t>(min) + 1;
  for (uint64_t i = 0; i < span; ++i) stamp[i] = -1;
  int64_t count = 0;
  for (int64_t s = 0; s < segments; ++s) {
    for (int64_t j = bounds[s]; j < bounds[s + 1]; ++j) {
      int64_t& last = stamp[static_cast<uint64_t>(addr[j]) - static_cast<uint64_t>(min)];
      if (last != s) {
        last = s;
        out[count++] = addr[j];
      }
    }
    ends[s] = count;
  }
  return true;
}

}  // namespace accelkit::trace_words
