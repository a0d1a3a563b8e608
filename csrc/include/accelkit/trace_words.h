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

// Each group of `size` consecutive words (the last one shorter) in the order CPython iterates a set built from it,
// as scalesim's list(set(group)) lists it. A word w in [0, 2^61 - 1) hashes to itself and, when no other word of
// its group shares its slot w & (slots - 1), sits in that slot, so the set iterates in ascending slot order;
// `slots_full` and `slots_last` are the table sizes (powers of two) of a set of `size` words and of the last
// group's count. Groups where two words share a slot, or a word lies outside [0, 2^61 - 1), are left unwritten
// in `out` and flagged in clash[g] (1); `table` holds max(slots_full, slots_last) entries. Returns false, writing
// nothing, for a size below 1 or a table size that is not a power of two.
bool set_orders(const int64_t* words, int64_t n, int64_t size, int64_t slots_full, int64_t slots_last, int64_t* table,
                int64_t* out, uint8_t* clash);

}  // namespace accelkit::trace_words
