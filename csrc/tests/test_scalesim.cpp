// Standalone checks of csrc/scalesim.cpp (SCALE-Sim's read buffers) against direct loops written from the buffer
// rules (a set of resident sets, a set of words seen since the flush), on random tiled streams, empty streams and
// bad arguments, with the sanitizers of `make sanitize`.
#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "accelkit/scalesim.h"
#include "check.h"

namespace as = accelkit::scalesim;
using accelkit_test::check;

namespace {

struct Stream {
  std::vector<int64_t> fold_tile, tile_start, addr, row;
  int64_t per = 0;
  as::TiledStream view() const {
    return {fold_tile.data(), static_cast<int64_t>(fold_tile.size()), tile_start.data(),
            static_cast<int64_t>(tile_start.size()) - 1, addr.data(), row.data(), static_cast<int64_t>(addr.size()),
            per};
  }
  // (address, row) of every request, in order.
  std::vector<std::pair<int64_t, int64_t>> flat() const {
    std::vector<std::pair<int64_t, int64_t>> out;
    for (size_t f = 0; f < fold_tile.size(); ++f)
      for (int64_t i = tile_start[fold_tile[f]]; i < tile_start[fold_tile[f] + 1]; ++i)
        out.emplace_back(addr[i], row[i] + static_cast<int64_t>(f) * per);
    return out;
  }
};

Stream random_stream(std::mt19937& gen, int64_t words, int64_t tiles, int64_t folds) {
  Stream s;
  s.per = 37;
  s.tile_start.push_back(0);
  for (int64_t k = 0; k < tiles; ++k) {
    const int64_t len = std::uniform_int_distribution<int64_t>(0, 30)(gen);
    for (int64_t i = 0; i < len; ++i) {
      s.addr.push_back(std::uniform_int_distribution<int64_t>(0, words - 1)(gen));
      s.row.push_back(i);
    }
    s.tile_start.push_back(static_cast<int64_t>(s.addr.size()));
  }
  for (int64_t f = 0; f < folds; ++f) s.fold_tile.push_back(std::uniform_int_distribution<int64_t>(0, tiles - 1)(gen));
  return s;
}

std::vector<int64_t> calc_reference(const Stream& s, int64_t cap, int64_t* used) {
  std::set<int64_t> seen;
  std::vector<int64_t> flushes;
  for (const auto& [a, r] : s.flat()) {
    if (!seen.insert(a).second) continue;
    if (static_cast<int64_t>(seen.size()) == cap) {
      flushes.push_back(r);
      seen.clear();
    }
  }
  *used = static_cast<int64_t>(seen.size());
  return flushes;
}

std::vector<int64_t> user_reference(const Stream& s, const std::vector<int64_t>& seq, int64_t set_words,
                                    int64_t n_active, int64_t n_prefetch) {
  const int64_t n_sets = static_cast<int64_t>(seq.size()) / set_words + 1;
  int64_t start = 0;
  auto resident = [&](int64_t a) {
    for (int64_t j = 0; j < n_active; ++j) {
      const int64_t set = (start + j) % n_sets;
      for (int64_t i = set * set_words; i < std::min<int64_t>((set + 1) * set_words, seq.size()); ++i)
        if (seq[i] == a) return true;
    }
    return false;
  };
  std::vector<int64_t> events;
  for (const auto& [a, r] : s.flat()) {
    if (resident(a) || n_prefetch == 0) continue;
    for (int64_t j = 0; j <= n_sets && !resident(a); ++j) {
      start = (start + n_prefetch) % n_sets;
      events.push_back(r);
    }
  }
  return events;
}

void check_calc(std::mt19937& gen) {
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t words = std::uniform_int_distribution<int64_t>(1, 60)(gen);
    const Stream s = random_stream(gen, words, 1 + trial % 5, trial % 9);
    const int64_t cap = std::uniform_int_distribution<int64_t>(1, 25)(gen);
    int64_t used = 0;
    const std::vector<int64_t> want = calc_reference(s, cap, &used);
    as::CalcFoldsResult got;
    check(as::calc_read_folds(s.view(), words, cap, &got) == as::Status::ok, "calc status");
    check(got.flush_rows == want && got.used == used, "calc trial " + std::to_string(trial));
  }
}

void check_user(std::mt19937& gen) {
  int with_events = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t words = std::uniform_int_distribution<int64_t>(1, 60)(gen);
    const Stream s = random_stream(gen, words, 1 + trial % 5, trial % 9);
    // Every word prefetched once (even trials) or up to three times, in a shuffled order.
    std::vector<int64_t> seq;
    for (int rep = 0; rep < (trial % 2 ? 1 + trial % 3 : 1); ++rep)
      for (int64_t w = 0; w < words; ++w) seq.push_back(w);
    std::shuffle(seq.begin(), seq.end(), gen);
    const int64_t set_words = std::uniform_int_distribution<int64_t>(1, 8)(gen);
    const int64_t n_sets = static_cast<int64_t>(seq.size()) / set_words + 1;
    const int64_t n_active = std::uniform_int_distribution<int64_t>(1, n_sets)(gen);
    const int64_t n_prefetch = std::uniform_int_distribution<int64_t>(0, n_sets - n_active)(gen);
    const as::UserReadArgs a{s.view(), seq.data(), static_cast<int64_t>(seq.size()), set_words, n_active, n_prefetch};
    std::vector<int64_t> got;
    const as::Status status = as::user_read_events(a, &got);
    // A window that cannot move or never reaches a word is an error there; the reference then differs.
    if (status == as::Status::ok)
      check(got == user_reference(s, seq, set_words, n_active, n_prefetch), "user trial " + std::to_string(trial));
    else
      check(status == as::Status::window_never_reaches, "user status " + std::to_string(trial));
    with_events += status == as::Status::ok && !got.empty();
  }
  check(with_events >= 50, "only " + std::to_string(with_events) + " user trials prefetched at all");
}

void check_refusals() {
  Stream s;
  s.fold_tile = {0, 1};
  s.tile_start = {0, 2, 3};
  s.addr = {0, 5, 9};
  s.row = {0, 1, 2};
  as::CalcFoldsResult out;
  check(as::calc_read_folds(s.view(), 10, 4, &out) == as::Status::ok, "calc ok");
  check(as::calc_read_folds(s.view(), 9, 4, &out) == as::Status::bad_argument, "calc address past words");
  check(as::calc_read_folds(s.view(), 10, 0, &out) == as::Status::bad_argument, "calc cap 0");
  Stream bad = s;
  bad.fold_tile = {0, 2};
  check(as::calc_read_folds(bad.view(), 10, 4, &out) == as::Status::bad_argument, "fold tile past tiles");
  bad = s;
  bad.tile_start = {0, 3, 2};
  check(as::calc_read_folds(bad.view(), 10, 4, &out) == as::Status::bad_argument, "decreasing tile_start");
  const std::vector<int64_t> seq{0, 5, 9, 1};
  std::vector<int64_t> events;
  check(as::user_read_events({s.view(), seq.data(), 4, 1, 2, 3}, &events) == as::Status::ok, "user ok");
  check(as::user_read_events({s.view(), seq.data(), 0, 1, 1, 0}, &events) == as::Status::bad_argument, "empty seq");
  check(as::user_read_events({s.view(), seq.data(), 4, 1, 2, 4}, &events) == as::Status::bad_argument,
        "prefetch past the sets");
  const std::vector<int64_t> short_seq{0, 5};
  check(as::user_read_events({s.view(), short_seq.data(), 2, 1, 1, 1}, &events) == as::Status::never_prefetched,
        "word outside the prefetched range");
  const std::vector<int64_t> holes{0, 9, 1, 2};
  check(as::user_read_events({s.view(), holes.data(), 4, 1, 1, 1}, &events) == as::Status::never_prefetched,
        "word inside the range, never prefetched");
  Stream empty;
  empty.tile_start = {0};
  check(as::calc_read_folds(empty.view(), 0, 1, &out) == as::Status::ok && out.flush_rows.empty(), "empty calc");
}

}  // namespace

int main() {
  std::mt19937 gen(7);
  check_calc(gen);
  check_user(gen);
  check_refusals();
  return accelkit_test::report("test_scalesim");
}
