// pybind11 bindings of the SCALE-Sim compat helpers (csrc/scalesim.cpp, csrc/text_rows.cpp, csrc/trace_words.cpp):
// read buffers, trace text and CALC prefetch words. Every check runs here, before the GIL is released, and fails
// with ValueError naming the argument; the module is csrc/bindings.cpp, the shared checks csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/scalesim.h"
#include "accelkit/text_rows.h"
#include "accelkit/trace_words.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace atr = accelkit::text_rows;
namespace atw = accelkit::trace_words;
namespace {

// Any strides (whole elements), so the caller's column slices and views need no copy.
py::bytes format_rows(const py::object& lead_obj, const py::object& body_obj, int64_t width, int64_t pad_value,
                      bool float_suffix) {
  const py::array body = as_nd_array(body_obj, "body", 2);
  if (!is_dtype(body, 'i', 8)) fail("body must have dtype int64, got " + dtype_str(body));
  const int64_t rows = body.shape(0), cols = body.shape(1);
  if (width < 0) width = cols;
  if (width < cols)
    fail("width must be at least body's " + std::to_string(cols) + " columns, got " + std::to_string(width));
  atr::RowsView view{nullptr, 0, static_cast<const int64_t*>(body.data()), rows, cols, stride_of(body, 0),
                     stride_of(body, 1), width, pad_value, float_suffix};
  py::array lead;
  if (!lead_obj.is_none()) {
    lead = as_nd_array(lead_obj, "lead", 1);
    if (!is_dtype(lead, 'i', 8)) fail("lead must have dtype int64, got " + dtype_str(lead));
    if (lead.shape(0) != rows)
      fail("lead must have one entry per row of body (" + std::to_string(rows) + "), got shape " + shape_str(lead));
    view.lead = static_cast<const int64_t*>(lead.data());
    view.lead_stride = stride_of(lead, 0);
  }
  const int64_t bound = atr::max_text_bytes(view);
  if (bound < 0 || bound > static_cast<int64_t>(PY_SSIZE_T_MAX)) fail("body is too large to format in one call");
  PyObject* text = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(bound));
  if (text == nullptr) throw py::error_already_set();
  int64_t written;
  {
    py::gil_scoped_release release;
    written = atr::format_rows(view, PyBytes_AS_STRING(text));
  }
  // Shrinks in place (or frees `text` and sets it to null on failure).
  if (_PyBytes_Resize(&text, static_cast<py::ssize_t>(written)) != 0) throw py::error_already_set();
  return py::reinterpret_steal<py::bytes>(text);
}

const int64_t* int64_1d(const py::object& obj, const std::string& name) {
  const py::array a = as_nd_array(obj, name, 1);
  return int64_vector(a, name, a.shape(0));
}

py::array_t<int64_t> int64_result(const std::vector<int64_t>& values) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

void check_scalesim(accelkit::scalesim::Status status, const std::string& what) {
  using accelkit::scalesim::Status;
  if (status == Status::bad_argument) fail(what + ": invalid arguments");
  if (status == Status::out_of_memory) throw std::bad_alloc();
  if (status == Status::never_prefetched) fail("a demanded address is never prefetched; SCALE-Sim would loop forever");
  if (status == Status::window_never_reaches) fail("read buffer window never reaches a demanded address");
}

// The stream's arrays must stay referenced by the caller while the view is used.
accelkit::scalesim::TiledStream tiled_stream(const py::object& fold_tile, const py::object& tile_start,
                                             const py::object& addr, const py::object& row, int64_t rows_per_fold) {
  accelkit::scalesim::TiledStream s{};
  s.fold_tile = int64_1d(fold_tile, "fold_tile");
  s.folds = py::len(fold_tile);
  s.tiles = static_cast<int64_t>(py::len(tile_start)) - 1;
  if (s.tiles < 0) fail("tile_start must have at least one entry");
  s.tile_start = int64_1d(tile_start, "tile_start");
  s.addr = int64_1d(addr, "addr");
  s.tile_len = py::len(addr);
  s.row = int64_vector(as_nd_array(row, "row", 1), "row", s.tile_len);
  s.rows_per_fold = rows_per_fold;
  return s;
}

py::array_t<int64_t> scalesim_user_read(const py::object& fold_tile, const py::object& tile_start,
                                        const py::object& addr, const py::object& row, int64_t rows_per_fold,
                                        const py::object& seq, int64_t set_words, int64_t n_active,
                                        int64_t n_prefetch) {
  accelkit::scalesim::UserReadArgs a{tiled_stream(fold_tile, tile_start, addr, row, rows_per_fold),
                                     int64_1d(seq, "seq"), 0, set_words, n_active, n_prefetch};
  a.seq_n = py::len(seq);
  std::vector<int64_t> events;
  accelkit::scalesim::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::scalesim::user_read_events(a, &events);
  }
  check_scalesim(status, "scalesim_user_read");
  return int64_result(events);
}

py::tuple scalesim_calc_read_folds(const py::object& fold_tile, const py::object& tile_start, const py::object& addr,
                                   const py::object& row, int64_t rows_per_fold, int64_t words, int64_t cap) {
  const accelkit::scalesim::TiledStream s = tiled_stream(fold_tile, tile_start, addr, row, rows_per_fold);
  accelkit::scalesim::CalcFoldsResult out;
  accelkit::scalesim::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::scalesim::calc_read_folds(s, words, cap, &out);
  }
  check_scalesim(status, "scalesim_calc_read_folds");
  return py::make_tuple(int64_result(out.flush_rows), out.used);
}

// Addresses spanning more words than this are left to the caller's sort-based path (the stamp table would outweigh
// the stream): 4 per request, and at least 2^20.
int64_t stamp_limit(int64_t n) {
  return n > (int64_t{1} << 60) / 4 ? int64_t{1} << 60 : std::max<int64_t>(4 * n, int64_t{1} << 20);
}

py::object calc_new_words(const py::object& addr_obj, const py::object& bounds_obj) {
  const py::array addr = as_nd_array(addr_obj, "addr", 1);
  if (!is_dtype(addr, 'i', 8)) fail("addr must have dtype int64, got " + dtype_str(addr));
  require_contiguous(addr, "addr");
  const py::array bounds = as_nd_array(bounds_obj, "bounds", 1);
  if (!is_dtype(bounds, 'i', 8)) fail("bounds must have dtype int64, got " + dtype_str(bounds));
  require_contiguous(bounds, "bounds");
  if (bounds.shape(0) < 1) fail("bounds must have at least one entry");
  const int64_t n = addr.shape(0), segments = bounds.shape(0) - 1;
  const auto* a = static_cast<const int64_t*>(addr.data());
  const auto* b = static_cast<const int64_t*>(bounds.data());
  if (b[0] != 0 || b[segments] != n) fail("bounds must run from 0 to addr's " + std::to_string(n) + " entries");
  for (int64_t s = 0; s < segments; ++s)
    if (b[s + 1] < b[s]) fail("bounds must never decrease");
  int64_t lo = 0, hi = 0;
  if (n > 0) lo = hi = a[0];
  for (int64_t j = 1; j < n; ++j) {
    lo = std::min(lo, a[j]);
    hi = std::max(hi, a[j]);
  }
  // hi - lo as unsigned never overflows; above the limit the caller sorts instead.
  if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) >= static_cast<uint64_t>(stamp_limit(n))) return py::none();
  std::vector<int64_t> stamp(static_cast<size_t>(static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1));
  py::array_t<int64_t> words(n), ends(segments);
  bool ok;
  {
    py::gil_scoped_release release;
    ok = atw::new_words(a, n, b, segments, lo, hi, stamp.data(), words.mutable_data(), ends.mutable_data());
  }
  if (!ok) fail("calc_new_words: invalid arguments");
  const int64_t count = segments > 0 ? ends.at(segments - 1) : 0;
  return py::make_tuple(words[py::slice(0, count, 1)], ends);
}

py::tuple calc_set_orders(const py::object& words_obj, int64_t size, int64_t slots_full, int64_t slots_last) {
  const py::array words = as_nd_array(words_obj, "words", 1);
  if (!is_dtype(words, 'i', 8)) fail("words must have dtype int64, got " + dtype_str(words));
  require_contiguous(words, "words");
  if (size < 1) fail("size must be at least 1, got " + std::to_string(size));
  // 2^32 slots (32 GiB of table) is far past any SRAM's 1% group; the cap keeps the scratch allocation sane.
  for (const auto& [slots, name] : {std::pair{slots_full, "slots_full"}, std::pair{slots_last, "slots_last"}})
    if (slots < 1 || (slots & (slots - 1)) != 0 || slots > (int64_t{1} << 32))
      fail(std::string(name) + " must be a power of two up to 2^32, got " + std::to_string(slots));
  const int64_t n = words.shape(0), groups = n == 0 ? 0 : (n - 1) / size + 1;
  std::vector<int64_t> table(static_cast<size_t>(std::max(slots_full, slots_last)));
  py::array_t<int64_t> out(n);
  py::array_t<uint8_t> clash(groups);
  bool ok;
  {
    py::gil_scoped_release release;
    ok = atw::set_orders(static_cast<const int64_t*>(words.data()), n, size, slots_full, slots_last, table.data(),
                         out.mutable_data(), clash.mutable_data());
  }
  if (!ok) fail("calc_set_orders: invalid arguments");
  return py::make_tuple(out, clash);
}

}  // namespace

void bind_sim(py::module_& m) {
  m.def("scalesim_user_read", &scalesim_user_read, py::arg("fold_tile"), py::arg("tile_start"), py::arg("addr"),
        py::arg("row"), py::arg("rows_per_fold"), py::arg("seq"), py::arg("set_words"), py::arg("n_active"),
        py::arg("n_prefetch"),
        "SCALE-Sim's USER-mode read buffer over a tiled demand stream (all int64, 1-D; fold f reads "
        "addr[tile_start[k]:tile_start[k + 1]] at row[...] + f * rows_per_fold, k = fold_tile[f]) with prefetch "
        "order seq in sets of set_words, n_active resident, n_prefetch per fetch: the demand row of every prefetch "
        "(int64). ValueError where scalesim would loop forever.");
  m.def("scalesim_calc_read_folds", &scalesim_calc_read_folds, py::arg("fold_tile"), py::arg("tile_start"),
        py::arg("addr"), py::arg("row"), py::arg("rows_per_fold"), py::arg("words"), py::arg("cap"),
        "SCALE-Sim's CALC-mode read buffer over a tiled demand stream (as scalesim_user_read) with addresses in "
        "[0, words): the cap-th new word since the last flush flushes. Returns (flush rows, new words of the last "
        "segment).");
  m.def("format_rows", &format_rows, py::arg("lead"), py::arg("body"), py::kw_only(), py::arg("width") = -1,
        py::arg("pad_value") = 1, py::arg("float_suffix") = false,
        "Text of int64 rows as np.savetxt(fmt='%d', delimiter=',') writes it: lead [N] (or None) first, then body "
        "[N, K] (any strides), then pad_value up to `width` values after the lead; '.0' after each value with "
        "float_suffix. Returns bytes.");
  m.def("calc_new_words", &calc_new_words, py::arg("addr"), py::arg("bounds"),
        "CALC prefetch words: for segments addr[bounds[s]:bounds[s+1]] of the int64 stream addr [N], the requests "
        "whose address does not occur earlier in their segment, in order, and the end of each segment's run in "
        "them: (words, ends). None when the addresses span more than max(4N, 2^20) words.");
  m.def("calc_set_orders", &calc_set_orders, py::arg("words"), py::arg("size"), py::arg("slots_full"),
        py::arg("slots_last"),
        "Each group of `size` int64 words in CPython set order, given the table sizes of a set of `size` words and "
        "of the last group: (ordered [N], clash [groups] uint8); clashing groups are left for a Python set.");
}

}  // namespace bindings
}  // namespace accelkit
