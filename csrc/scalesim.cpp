// SCALE-Sim 3.0.0's read buffers request by request (see accelkit/scalesim.h and sim/scalesim/memory.py, whose
// NumPy versions these replace when the extension is built).
#include "accelkit/scalesim.h"

#include <algorithm>
#include <new>

namespace accelkit {
namespace scalesim {
namespace {

bool valid_tiles(const TiledStream& s) {
  if (s.folds < 0 || s.tiles < 0 || s.tile_len < 0 || s.rows_per_fold < 0) return false;
  if (s.tile_start[0] != 0 || s.tile_start[s.tiles] != s.tile_len) return false;
  for (int64_t k = 0; k < s.tiles; ++k)
    if (s.tile_start[k + 1] < s.tile_start[k]) return false;
  for (int64_t f = 0; f < s.folds; ++f)
    if (s.fold_tile[f] < 0 || s.fold_tile[f] >= s.tiles) return false;
  return true;
}

bool addresses_within(const TiledStream& s, int64_t lo, int64_t hi) {
  for (int64_t i = 0; i < s.tile_len; ++i)
    if (s.addr[i] < lo || s.addr[i] > hi) return false;
  return true;
}

// The resident prefetch sets. Words prefetched once (GEMMs, every filter) keep the index of their one set and are
// resident when it lies in the window; otherwise each word counts the window's sets holding it (an im2col word
// repeats in up to R x S / stride^2 sets), updated set by set as the window moves.
class Window {
 public:
  Window(const UserReadArgs& a, int64_t lo, int64_t span)
      : seq_(a.seq), seq_n_(a.seq_n), set_words_(a.set_words), n_sets_(a.seq_n / a.set_words + 1),
        n_active_(a.n_active), lo_(lo), present_(static_cast<size_t>(span), 0) {
    bool unique = true;
    for (int64_t i = 0; i < seq_n_; ++i) unique &= ++present_[static_cast<size_t>(seq_[i] - lo_)] == 1;
    unique_ = unique;
    if (unique_) {
      set_of_.assign(static_cast<size_t>(span), -1);
      for (int64_t i = 0; i < seq_n_; ++i) set_of_[static_cast<size_t>(seq_[i] - lo_)] = i / set_words_;
    } else {
      count_.assign(static_cast<size_t>(span), 0);
      add(0, n_active_, 1);
    }
  }

  int64_t n_sets() const { return n_sets_; }
  bool prefetched(int64_t word) const { return present_[static_cast<size_t>(word - lo_)] != 0; }

  bool hit(int64_t word) const {
    const size_t i = static_cast<size_t>(word - lo_);
    if (!unique_) return count_[i] > 0;
    const int64_t s = set_of_[i];
    if (s < 0) return false;
    // Both in [0, n_sets): one conditional add instead of a 64-bit modulo per request.
    const int64_t d = s >= start_ ? s - start_ : s - start_ + n_sets_;
    return d < n_active_;
  }

  void advance(int64_t sets) {
    if (!unique_) {
      add(start_, sets, -1);
      add(start_ + n_active_, sets, 1);
    }
    start_ = (start_ + sets) % n_sets_;
  }

 private:
  // Add `sign` to the count of every word of sets first, first + 1, ... (mod n_sets), `sets` of them.
  void add(int64_t first, int64_t sets, int32_t sign) {
    first %= n_sets_;
    add_range(first, std::min(first + sets, n_sets_), sign);
    add_range(0, std::max<int64_t>(first + sets - n_sets_, 0), sign);
  }

  void add_range(int64_t a, int64_t b, int32_t sign) {
    const int64_t end = std::min(b * set_words_, seq_n_);
    for (int64_t i = a * set_words_; i < end; ++i) count_[static_cast<size_t>(seq_[i] - lo_)] += sign;
  }

  const int64_t* seq_;
  int64_t seq_n_, set_words_, n_sets_, n_active_, lo_;
  int64_t start_ = 0;
  bool unique_ = true;
  std::vector<int32_t> present_, count_;
  std::vector<int64_t> set_of_;
};

Status replay_user(const UserReadArgs& a, Window& w, std::vector<int64_t>* events) {
  const TiledStream& s = a.stream;
  for (int64_t f = 0; f < s.folds; ++f) {
    const int64_t k = s.fold_tile[f], base = f * s.rows_per_fold;
    for (int64_t i = s.tile_start[k]; i < s.tile_start[k + 1]; ++i) {
      const int64_t word = s.addr[i];
      if (w.hit(word)) continue;
      if (!w.prefetched(word)) return Status::never_prefetched;
      if (a.n_prefetch == 0) continue;
      bool reached = false;
      for (int64_t j = 0; j <= w.n_sets() && !reached; ++j) {
        w.advance(a.n_prefetch);
        events->push_back(s.row[i] + base);
        reached = w.hit(word);
      }
      if (!reached) return Status::window_never_reaches;
    }
  }
  return Status::ok;
}

}  // namespace

Status user_read_events(const UserReadArgs& a, std::vector<int64_t>* event_rows) {
  // Per-word counts are int32: they never exceed the number of sets, below seq_n.
  if (a.seq_n < 1 || a.seq_n >= (int64_t{1} << 31) || a.set_words < 1 || a.n_active < 0 || a.n_prefetch < 0)
    return Status::bad_argument;
  const int64_t n_sets = a.seq_n / a.set_words + 1;
  if (a.n_active > n_sets || a.n_prefetch > n_sets - a.n_active || !valid_tiles(a.stream))
    return Status::bad_argument;
  int64_t lo = a.seq[0], hi = a.seq[0];
  for (int64_t i = 0; i < a.seq_n; ++i) {
    if (a.seq[i] < 0) return Status::bad_argument;
    lo = std::min(lo, a.seq[i]);
    hi = std::max(hi, a.seq[i]);
  }
  // A demanded word outside the prefetched range is never fetched (words inside it fail at their first miss).
  if (!addresses_within(a.stream, lo, hi)) return Status::never_prefetched;
  try {
    Window window(a, lo, hi - lo + 1);
    return replay_user(a, window, event_rows);
  } catch (const std::bad_alloc&) {
    return Status::out_of_memory;
  }
}

Status calc_read_folds(const TiledStream& s, int64_t words, int64_t cap, CalcFoldsResult* out) {
  if (words < 0 || cap < 1 || !valid_tiles(s) || !addresses_within(s, 0, words - 1)) return Status::bad_argument;
  try {
    // mark[w] == segment: word w was read since the last flush; whole[k] == segment: tile k was read whole since.
    std::vector<int64_t> mark(static_cast<size_t>(words), -1), whole(static_cast<size_t>(s.tiles), -1);
    int64_t segment = 0, used = 0;
    for (int64_t f = 0; f < s.folds; ++f) {
      const int64_t k = s.fold_tile[f];
      if (whole[static_cast<size_t>(k)] == segment) continue;
      bool flushed = false;
      for (int64_t i = s.tile_start[k]; i < s.tile_start[k + 1]; ++i) {
        int64_t& m = mark[static_cast<size_t>(s.addr[i])];
        if (m == segment) continue;
        m = segment;
        if (++used == cap) {
          out->flush_rows.push_back(s.row[i] + f * s.rows_per_fold);
          ++segment;
          used = 0;
          flushed = true;
        }
      }
      if (!flushed) whole[static_cast<size_t>(k)] = segment;
    }
    out->used = used;
    return Status::ok;
  } catch (const std::bad_alloc&) {
    return Status::out_of_memory;
  }
}

}  // namespace scalesim
}  // namespace accelkit
