// The words of SCALE-Sim's CALC-mode DRAM prefetches, for the simulator's traces (framework-free).
#pragma once

#include <cstdint>

namespace accelkit::trace_words {

// Segment s of the request stream addr[0 .. n) is addr[bounds[s] .. bounds[s + 1]); its new words are the requests
// whose address does not occur earlier in the same segment, in stream order. Writes them to `out` (n entries
// suffice) and the end of each segment's run to `ends[s]`; `stamp` holds span = max - min + 1 entries (any
// contents), where min and max bound every address. Returns false, writing nothing, when an address lies outside
// [min, max] or the bounds do not run, non-decreasing, from 0 to n.
bool new_words(const int64_t* addr, int64_t n, const int64_t* bounds, int64_t segments, int64_t min, int64_t max,
               int64_t* stamp, int64_t* out, int64_t* ends);

}  // namespace accelkit::trace_words
