// SCALE-Sim 3.0.0's read buffers, the two loops of sim/scalesim that visit every SRAM request (framework-free).
//
// Both replay the requests in service order, one compare per request, where the NumPy versions in
// sim/scalesim/memory.py and engine.py need several array passes per chunk (ViT-S on a 32x32 array in USER mode
// issues ~10^7 requests). The functions check every index they use and return Status::bad_argument instead of
// reading out of bounds.
#pragma once

#include <cstdint>
#include <vector>

namespace accelkit {
namespace scalesim {

enum class Status { ok, bad_argument, out_of_memory, never_prefetched, window_never_reaches };

// An operand's demand stream without materialising it: fold f reads tile fold_tile[f], the words
// addr[tile_start[k] .. tile_start[k + 1]) at rows row[...] + f * rows_per_fold, in service order. Folds of one
// tile read the same words in the same order (a WS IFMAP tile serves every column fold), so the stream is the
// tiles once plus one index per fold. A whole stream is one fold of one tile.
struct TiledStream {
  const int64_t* fold_tile;  // [folds], each in [0, tiles)
  int64_t folds;
  const int64_t* tile_start;  // [tiles + 1], non-decreasing from 0 to tile_len
  int64_t tiles;
  const int64_t* addr;  // [tile_len] word addresses
  const int64_t* row;   // [tile_len] demand rows within the fold
  int64_t tile_len;
  int64_t rows_per_fold;
};

// USER-mode read buffer. `seq` is the operand's prefetch order (seq_n words, none negative), cut into sets of
// `set_words`; a window of `n_active` sets from set 0 is resident. A request for a word outside the window advances
// it by `n_prefetch` sets, one prefetch each (its demand row appended to `event_rows`), until the word is resident.
struct UserReadArgs {
  TiledStream stream;
  const int64_t* seq;
  int64_t seq_n;
  int64_t set_words;
  int64_t n_active;
  int64_t n_prefetch;
};

Status user_read_events(const UserReadArgs& a, std::vector<int64_t>* event_rows);

// CALC-mode read buffer of a stream whose addresses lie in [0, words): a request is new when its word was not read
// since the last flush, and the cap-th new word flushes (its row is appended to `flush_rows`). A tile read whole
// since the last flush adds nothing and is skipped.
struct CalcFoldsResult {
  std::vector<int64_t> flush_rows;
  int64_t used = 0;  // new words of the last, unflushed segment
};

Status calc_read_folds(const TiledStream& s, int64_t words, int64_t cap, CalcFoldsResult* out);

}  // namespace scalesim
}  // namespace accelkit
