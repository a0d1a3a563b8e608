// The only pybind11 file: thin bindings over the framework-free kernels in csrc/include/accelkit/.
//
// Kernels take NumPy arrays (torch CPU tensors convert with .numpy() without a copy) and write into an output the
// caller allocated. Every check happens here, before the GIL is released, and fails with ValueError naming the
// argument, so no input reaches a kernel that could make it read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "accelkit/attention.h"
#include "accelkit/binary.h"
#include "accelkit/cpu_features.h"
#include "accelkit/delta_rule.h"
#include "accelkit/scalesim.h"
#include "accelkit/spiking.h"
#include "accelkit/text_rows.h"
#include "accelkit/trace_words.h"
#include "accelkit/wkv.h"

namespace py = pybind11;
namespace ab = accelkit::binary;
namespace aa = accelkit::attention;
namespace aw = accelkit::wkv;
namespace atr = accelkit::text_rows;
namespace atw = accelkit::trace_words;

namespace {

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array as_array(const py::object& obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    fail(name + " must be a numpy array, got " + py::str(py::type::of(obj)).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != 2) fail(name + " must be 2-D, got shape " + shape_str(a));
  if (!a.dtype().attr("isnative").cast<bool>()) fail(name + " must be in native byte order, got " + dtype_str(a));
  if (reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0) fail(name + " must be aligned");
  return a;
}

void require_contiguous(const py::array& a, const std::string& name) {
  if (!(a.flags() & py::array::c_style)) fail(name + " must be C-contiguous");
}

void require_output(const py::array& a, const std::string& name) {
  require_contiguous(a, name);
  if (!a.writeable()) fail(name + " must be writeable");
}

// Bits per word of a packed operand: 32 for (u)int32, 64 for (u)int64 (torch has no uint64; the launchers pass
// int64 bit patterns).
int word_bits_of(const py::array& a, const std::string& name) {
  const char kind = a.dtype().kind();
  if ((kind != 'i' && kind != 'u') || (a.itemsize() != 4 && a.itemsize() != 8))
    fail(name + " must hold 32- or 64-bit integer words, got dtype " + dtype_str(a));
  return static_cast<int>(8 * a.itemsize());
}

void require_int32(const py::array& a, const std::string& name) {
  if (a.dtype().kind() != 'i' || a.itemsize() != 4) fail(name + " must have dtype int32, got " + dtype_str(a));
}

// First and one-past-last byte an array can touch, for the overlap check.
std::pair<std::uintptr_t, std::uintptr_t> byte_range(const py::array& a) {
  auto lo = reinterpret_cast<std::intptr_t>(a.data());
  auto hi = lo;
  if (a.size() == 0) return {0, 0};
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const std::intptr_t span = static_cast<std::intptr_t>(a.shape(d) - 1) * a.strides(d);
    (span < 0 ? lo : hi) += span;
  }
  return {static_cast<std::uintptr_t>(lo), static_cast<std::uintptr_t>(hi + a.itemsize())};
}

void require_disjoint(const py::array& out, const py::array& in, const std::string& out_name,
                      const std::string& in_name) {
  const auto [a0, a1] = byte_range(out);
  const auto [b0, b1] = byte_range(in);
  if (a0 < b1 && b0 < a1) fail(out_name + " must not overlap " + in_name);
}

// The one parser of every op's `isa` argument; `supported` is that op's own CPU check.
accelkit::Isa named_isa(const std::string& isa) {
  accelkit::Isa parsed;
  if (!accelkit::isa_from_name(isa.c_str(), &parsed))
    fail("isa must be 'auto', 'avx512', 'avx2' or 'scalar', got '" + isa + "'");
  return parsed;
}

accelkit::Isa parse_isa(const std::string& isa, bool (*supported)(accelkit::Isa)) {
  if (isa == "auto") return accelkit::best_isa(supported);
  const accelkit::Isa parsed = named_isa(isa);
  if (!supported(parsed)) fail("isa '" + isa + "' is not supported by this CPU");
  return parsed;
}

bool isa_available(const std::string& isa, bool (*supported)(accelkit::Isa)) {
  return isa == "auto" || supported(named_isa(isa));
}

void check_status(ab::Status status, const std::string& what) {
  if (status == ab::Status::bad_argument) fail(what + ": invalid arguments");
  if (status == ab::Status::unsupported_isa) fail(what + ": isa not supported by this CPU");
}

void binary_pack(const py::object& x_obj, const py::object& out_obj, int word_bits, const std::string& isa_name) {
  const py::array x = as_array(x_obj, "x");
  py::array out = as_array(out_obj, "out");
  if (word_bits != 32 && word_bits != 64) fail("word_bits must be 32 or 64, got " + std::to_string(word_bits));
  const ab::Isa isa = parse_isa(isa_name, ab::isa_supported);
  if (x.dtype().kind() != 'f' || (x.itemsize() != 4 && x.itemsize() != 8))
    fail("x must have dtype float32 or float64, got " + dtype_str(x));
  for (int d = 0; d < 2; ++d)
    if (x.strides(d) % x.itemsize() != 0) fail("x strides must be multiples of its itemsize");
  if (word_bits_of(out, "out") != word_bits)
    fail("out dtype " + dtype_str(out) + " does not hold " + std::to_string(word_bits) + "-bit words");
  require_output(out, "out");
  const int64_t rows = x.shape(0), k = x.shape(1);
  const int64_t words = ab::num_words(k, word_bits);
  if (out.shape(0) != rows || out.shape(1) != words)
    fail("out must have shape (" + std::to_string(rows) + ", " + std::to_string(words) + ") for x of shape " +
         shape_str(x) + " and " + std::to_string(word_bits) + "-bit words, got " + shape_str(out));
  require_disjoint(out, x, "out", "x");
  const int64_t rs = x.strides(0) / x.itemsize(), cs = x.strides(1) / x.itemsize();
  const void* src = x.data();
  void* dst = out.mutable_data();
  // Everything the kernel needs is read before the GIL goes: itemsize() touches the dtype object.
  const bool is_f32 = x.itemsize() == 4;
  ab::Status status;
  {
    py::gil_scoped_release release;
    status = is_f32
                 ? ab::pack_f32(static_cast<const float*>(src), rows, k, rs, cs, dst, word_bits, isa)
                 : ab::pack_f64(static_cast<const double*>(src), rows, k, rs, cs, dst, word_bits, isa);
  }
  check_status(status, "binary_pack");
}

struct GemmOperands {
  py::array a, w, out;
  int64_t m, n, words, units;
  int word_bits;
};

// Checks of the packed GEMM inputs: a [M, W] and w [N, W] words of one width, contiguous.
GemmOperands gemm_inputs(const py::object& a_obj, const py::object& w_obj, const std::string& a_name) {
  GemmOperands g{as_array(a_obj, a_name), as_array(w_obj, "w_bits"), py::array(), 0, 0, 0, 0, 0};
  g.word_bits = word_bits_of(g.a, a_name);
  if (word_bits_of(g.w, "w_bits") != g.word_bits)
    fail("w_bits dtype " + dtype_str(g.w) + " and " + a_name + " dtype " + dtype_str(g.a) + " differ in word size");
  require_contiguous(g.a, a_name);
  require_contiguous(g.w, "w_bits");
  g.m = g.a.shape(0);
  g.n = g.w.shape(0);
  g.words = g.a.shape(1);
  if (g.w.shape(1) != g.words)
    fail("w_bits has " + std::to_string(g.w.shape(1)) + " words per row but " + a_name + " has " +
         std::to_string(g.words));
  g.units = g.words * (g.word_bits / 32);
  if (32 * g.units > INT32_MAX) fail(a_name + " rows hold more bits than an int32 result can count");
  return g;
}

// The inputs' checks, and out int32 [M, N], writeable, overlapping neither input.
GemmOperands gemm_operands(const py::object& a_obj, const py::object& w_obj, const py::object& out_obj,
                           const std::string& a_name) {
  GemmOperands g = gemm_inputs(a_obj, w_obj, a_name);
  g.out = as_array(out_obj, "out");
  require_int32(g.out, "out");
  require_output(g.out, "out");
  if (g.out.shape(0) != g.m || g.out.shape(1) != g.n)
    fail("out must have shape (" + std::to_string(g.m) + ", " + std::to_string(g.n) + "), got " + shape_str(g.out));
  require_disjoint(g.out, g.a, "out", a_name);
  require_disjoint(g.out, g.w, "out", "w_bits");
  return g;
}

// k must need exactly W words, or padding bits would be counted as elements (or elements as padding).
void check_k(const GemmOperands& g, int64_t k) {
  if (k < 0 || k > g.words * g.word_bits || (g.words > 0 && k <= (g.words - 1) * g.word_bits))
    fail("k = " + std::to_string(k) + " does not fit a_bits with " + std::to_string(g.words) + " words of " +
         std::to_string(g.word_bits) + " bits: need " + std::to_string(std::max<int64_t>(0, g.words - 1)) + " * " +
         std::to_string(g.word_bits) + (g.words > 0 ? " < k <= " : " = k = ") +
         std::to_string(g.words * g.word_bits));
}

void binary_gemm(const py::object& a_obj, const py::object& w_obj, int64_t k, const py::object& out_obj,
                 const std::string& isa_name) {
  GemmOperands g = gemm_operands(a_obj, w_obj, out_obj, "a_bits");
  const ab::Isa isa = parse_isa(isa_name, ab::isa_supported);
  check_k(g, k);
  const auto* a = static_cast<const uint32_t*>(g.a.data());
  const auto* w = static_cast<const uint32_t*>(g.w.data());
  auto* out = static_cast<int32_t*>(g.out.mutable_data());
  ab::Status status;
  {
    py::gil_scoped_release release;
    status = ab::xnor_gemm(a, w, g.m, g.n, g.units, k, out, isa);
  }
  check_status(status, "binary_gemm");
}

// Result buffers of 2 MiB and more are 2 MiB aligned and marked for transparent huge pages: a fresh 64 MiB result
// then costs 32 page faults instead of 16384 of 4 KiB, and the GEMM that writes it in tiles misses the TLB 512 times
// less often. Where THP is off, madvise is a no-op.
//
// Those buffers are also pooled: when a result dies its buffer is kept (at most kPoolBuffers of them, kPoolBytes in
// all) for the next result of the same rounded size. A model that makes a result of the same shape every call, as
// inference does, then writes into memory that is already mapped, where a fresh mapping costs a fault and a zeroed
// page per 2 MiB, as much memory traffic again as the result itself, and an munmap (with a TLB shootdown on every
// core) when it is freed.
constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kPoolBuffers = 4;
constexpr size_t kPoolBytes = size_t(256) << 20;

struct Buffer {
  void* data;
  size_t bytes;  // rounded size; 0 for small buffers, which go back to malloc
};

class ResultPool {
 public:
  Buffer take(size_t bytes) {
    if (bytes < kHuge) {
      void* p = std::malloc(std::max<size_t>(bytes, 1));
      if (p == nullptr) throw std::bad_alloc();
      return {p, 0};
    }
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); ++i) {
        if (free_[i].bytes == rounded) {
          const Buffer b = free_[i];
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          held_ -= rounded;
          return b;
        }
      }
    }
    return {fresh(rounded), rounded};
  }

  void give_back(Buffer b) {
    if (b.bytes != 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (free_.size() < kPoolBuffers && held_ + b.bytes <= kPoolBytes) {
        free_.push_back(b);
        held_ += b.bytes;
        return;
      }
    }
    std::free(b.data);
  }

 private:
  static void* fresh(size_t rounded) {
    void* p = nullptr;
#if defined(__unix__) || defined(__APPLE__)
    if (posix_memalign(&p, kHuge, rounded) != 0) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
#else
    p = std::malloc(rounded);
    if (p == nullptr) throw std::bad_alloc();
#endif
    return p;
  }

  std::mutex mutex_;
  std::vector<Buffer> free_;
  size_t held_ = 0;
};

ResultPool& result_pool() {
  // Never destroyed: a result that outlives the module at interpreter exit must still find the pool.
  static ResultPool* pool = new ResultPool();
  return *pool;
}

// A new C-contiguous [rows, cols] array of T that owns its buffer (given back when the last view of it goes, torch
// tensors made by torch.from_numpy included).
template <typename T>
py::array_t<T> new_result(int64_t rows, int64_t cols) {
  auto* buffer = new Buffer(result_pool().take(static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(T)));
  py::capsule owner(buffer, [](void* p) {
    auto* b = static_cast<Buffer*>(p);
    result_pool().give_back(*b);
    delete b;
  });
  return py::array_t<T>({rows, cols}, static_cast<T*>(buffer->data), owner);
}

// An uninitialised [rows, cols] result buffer from the pool, for launchers that allocate outputs in Python.
py::array empty_result(int64_t rows, int64_t cols, const std::string& dtype) {
  if (rows < 0 || cols < 0) fail("rows and cols must be >= 0");
  if (dtype == "float32") return new_result<float>(rows, cols);
  if (dtype == "float64") return new_result<double>(rows, cols);
  fail("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

// binary_gemm into a new result of `dtype` ("int32", or "float32" converted tile by tile inside the GEMM).
py::array binary_gemm_new(const py::object& a_obj, const py::object& w_obj, int64_t k, const std::string& dtype,
                          const std::string& isa_name) {
  GemmOperands g = gemm_inputs(a_obj, w_obj, "a_bits");
  const ab::Isa isa = parse_isa(isa_name, ab::isa_supported);
  check_k(g, k);
  if (dtype != "int32" && dtype != "float32") fail("dtype must be 'int32' or 'float32', got '" + dtype + "'");
  const auto* a = static_cast<const uint32_t*>(g.a.data());
  const auto* w = static_cast<const uint32_t*>(g.w.data());
  ab::Status status;
  if (dtype == "float32") {
    auto out = new_result<float>(g.m, g.n);
    float* data = out.mutable_data();
    {
      py::gil_scoped_release release;
      status = ab::xnor_gemm_f32(a, w, g.m, g.n, g.units, k, data, isa);
    }
    check_status(status, "binary_gemm_new");
    return out;
  }
  auto out = new_result<int32_t>(g.m, g.n);
  int32_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    status = ab::xnor_gemm(a, w, g.m, g.n, g.units, k, data, isa);
  }
  check_status(status, "binary_gemm_new");
  return out;
}

void spike_gemm(const py::object& s_obj, const py::object& w_obj, const py::object& out_obj,
                const std::string& isa_name) {
  GemmOperands g = gemm_operands(s_obj, w_obj, out_obj, "s_bits");
  const ab::Isa isa = parse_isa(isa_name, ab::isa_supported);
  const auto* s = static_cast<const uint32_t*>(g.a.data());
  const auto* w = static_cast<const uint32_t*>(g.w.data());
  auto* out = static_cast<int32_t*>(g.out.mutable_data());
  ab::Status status;
  {
    py::gil_scoped_release release;
    status = ab::spike_gemm(s, w, g.m, g.n, g.units, out, isa);
  }
  check_status(status, "spike_gemm");
}


// --- decode attention (csrc/attention_decode.cpp) ---------------------------------------------------------------

// An n-D array with the checks of as_array; strides must be whole elements.
py::array as_nd_array(const py::object& obj, const std::string& name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    fail(name + " must be a numpy array, got " + py::str(py::type::of(obj)).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != ndim) fail(name + " must be " + std::to_string(ndim) + "-D, got shape " + shape_str(a));
  if (!a.dtype().attr("isnative").cast<bool>()) fail(name + " must be in native byte order, got " + dtype_str(a));
  if (reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0) fail(name + " must be aligned");
  for (py::ssize_t d = 0; d < ndim; ++d)
    if (a.strides(d) % a.itemsize() != 0) fail(name + " strides must be multiples of its itemsize");
  return a;
}

int64_t stride_of(const py::array& a, int d) { return static_cast<int64_t>(a.strides(d) / a.itemsize()); }

bool is_dtype(const py::array& a, char kind, py::ssize_t itemsize) {
  return a.dtype().kind() == kind && a.itemsize() == itemsize;
}

// A 1-D C-contiguous int64 array of `length` entries.
const int64_t* int64_vector(const py::array& a, const std::string& name, int64_t length) {
  if (!is_dtype(a, 'i', 8)) fail(name + " must have dtype int64, got " + dtype_str(a));
  require_contiguous(a, name);
  if (a.shape(0) != length)
    fail(name + " must have " + std::to_string(length) + " entries, got shape " + shape_str(a));
  return static_cast<const int64_t*>(a.data());
}

// The schedule must be the partition of exactly these sequences into pieces the kernel can index safely: tile
// offsets from the lengths, contiguous program ranges covering every LeanTile once, and for each tile the programs
// that meet it exactly first_program[o] .. first_program[o] + num_pieces[o] - 1, with piece_offsets their prefix sum.
// One walk over programs and tiles, O(O + P).
void check_schedule(const aa::DecodeProblem& pr) {
  const int64_t tiles = pr.batch * pr.h_kv, programs = pr.num_programs;
  const int64_t* to = pr.tile_offsets;
  if (to[0] != 0) fail("tile_offsets must start at 0");
  for (int64_t o = 0; o < tiles; ++o) {
    const int64_t length = pr.seqlens[o / pr.h_kv];
    // ceil(length / block_n) without length + block_n - 1, which overflows for a block_n near 2^63.
    if (to[o + 1] < to[o] || to[o + 1] - to[o] != length / pr.block_n + (length % pr.block_n != 0))
      fail("tile_offsets does not match cache_seqlens and block_n at output tile " + std::to_string(o));
  }
  const int64_t* ps = pr.program_starts;
  if (ps[0] != 0 || ps[programs] != to[tiles])
    fail("program_starts must run from 0 to the " + std::to_string(to[tiles]) + " LeanTiles");
  for (int64_t p = 0; p < programs; ++p)
    if (ps[p + 1] < ps[p]) fail("program_starts must not decrease (program " + std::to_string(p) + ")");
  if (pr.piece_offsets[0] != 0) fail("piece_offsets must start at 0");
  // Every count below stays within [0, programs] before it is added, so no sum overflows.
  for (int64_t o = 0; o < tiles; ++o) {
    if (pr.num_pieces[o] < 0 || pr.num_pieces[o] > programs || pr.first_program[o] < 0 ||
        pr.first_program[o] > programs - pr.num_pieces[o])
      fail("first_program and num_pieces must name programs in [0, " + std::to_string(programs) + ") at tile " +
           std::to_string(o));
    if (pr.piece_offsets[o + 1] != pr.piece_offsets[o] + pr.num_pieces[o])
      fail("piece_offsets must be the prefix sum of num_pieces");
  }
  std::vector<int64_t> met(static_cast<size_t>(tiles), 0);
  int64_t o = 0;
  for (int64_t p = 0; p < programs; ++p) {
    if (ps[p] == ps[p + 1]) continue;
    while (to[o + 1] <= ps[p]) ++o;
    for (; o < tiles && to[o] < ps[p + 1]; ++o) {
      if (to[o] == to[o + 1]) continue;
      if (p < pr.first_program[o] || p >= pr.first_program[o] + pr.num_pieces[o])
        fail("first_program and num_pieces do not match program_starts: program " + std::to_string(p) +
             " meets tile " + std::to_string(o));
      ++met[o];
    }
    o = std::max<int64_t>(0, o - 1);  // the next program may continue the last tile this one met
  }
  for (int64_t t = 0; t < tiles; ++t)
    if (met[t] != pr.num_pieces[t])
      fail("num_pieces does not match program_starts at tile " + std::to_string(t));
}

// The cache: [B, T_cache, H_kv, D] or pages [num_pages, page_size, H_kv, D], float32 or bfloat16 bits (int16),
// rows of D contiguous; every key a sequence reaches must lie inside it.
void cache_operands(aa::DecodeProblem& pr, const py::array& k, const py::array& v, const py::object& table_obj,
                    py::array& table, const std::vector<int64_t>& lengths) {
  const bool f32 = is_dtype(k, 'f', 4);
  if (!f32 && !is_dtype(k, 'i', 2) && !is_dtype(k, 'u', 2))
    fail("k_cache must be float32 or bfloat16 bits (int16), got " + dtype_str(k));
  if (!k.dtype().is(v.dtype())) fail("v_cache dtype " + dtype_str(v) + " differs from k_cache's " + dtype_str(k));
  for (int d = 0; d < 4; ++d)
    if (v.shape(d) != k.shape(d))
      fail("v_cache must have k_cache's shape " + shape_str(k) + ", got " + shape_str(v));
  if (k.shape(2) != pr.h_kv || k.shape(3) != pr.head_dim)
    fail("k_cache must be [.., .., H_kv, D] with D = " + std::to_string(pr.head_dim) + " (q's head dim), got " +
         shape_str(k));
  if (pr.h_kv < 1 || pr.h_q % pr.h_kv != 0)
    fail("q's H_q = " + std::to_string(pr.h_q) + " must be a multiple of k_cache's H_kv = " +
         std::to_string(pr.h_kv));
  // (An empty array may carry any strides: NumPy makes some of them 0.)
  if (pr.head_dim > 1 && k.size() > 0 && (stride_of(k, 3) != 1 || stride_of(v, 3) != 1))
    fail("k_cache and v_cache must have contiguous rows (stride 1 along D)");
  pr.cache_type = f32 ? aa::CacheType::f32 : aa::CacheType::bf16;
  pr.k = k.data();
  pr.v = v.data();
  for (int d = 0; d < 3; ++d) {
    pr.k_stride[d] = stride_of(k, d);
    pr.v_stride[d] = stride_of(v, d);
  }
  pr.cache_rows = k.shape(1);
  pr.num_pages = k.shape(0);
  int64_t capacity = pr.cache_rows;
  if (!table_obj.is_none()) {
    table = as_nd_array(table_obj, "block_table", 2);
    require_int32(table, "block_table");
    if (table.shape(0) != pr.batch)
      fail("block_table must be [B, max_blocks] with B = " + std::to_string(pr.batch) + ", got " + shape_str(table));
    if (pr.cache_rows < 1) fail("a paged k_cache must have page_size (dim 1) >= 1, got " + shape_str(k));
    pr.block_table = static_cast<const int32_t*>(table.data());
    pr.block_table_stride[0] = stride_of(table, 0);
    pr.block_table_stride[1] = stride_of(table, 1);
    pr.max_blocks = table.shape(1);
    capacity = pr.max_blocks * pr.cache_rows;
  } else if (pr.num_pages != pr.batch) {
    fail("a contiguous k_cache must be [B, T_cache, H_kv, D] with B = " + std::to_string(pr.batch) + ", got " +
         shape_str(k));
  }
  for (int64_t b = 0; b < pr.batch; ++b) {
    if (lengths[b] < 0 || lengths[b] > capacity)
      fail("cache_seqlens[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " must lie in [0, " +
           std::to_string(capacity) + "]");
    if (!pr.block_table) continue;
    const int64_t used = (lengths[b] + pr.cache_rows - 1) / pr.cache_rows;
    for (int64_t i = 0; i < used; ++i) {
      const int64_t page = pr.block_table[b * pr.block_table_stride[0] + i * pr.block_table_stride[1]];
      if (page < 0 || page >= pr.num_pages)
        fail("block_table[" + std::to_string(b) + ", " + std::to_string(i) + "] = " + std::to_string(page) +
             " points outside the " + std::to_string(pr.num_pages) + " pages of k_cache");
    }
  }
}

void decode_attention(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                      const py::object& seqlens_obj, const py::object& table_obj, double scale, int64_t block_n,
                      const py::object& tile_offsets_obj, const py::object& program_starts_obj,
                      const py::object& first_program_obj, const py::object& num_pieces_obj,
                      const py::object& piece_offsets_obj, const py::object& out_obj, const py::object& lse_obj,
                      const std::string& isa_name, int threads) {
  aa::DecodeProblem pr;
  const py::array q = as_nd_array(q_obj, "q", 4);
  if (!is_dtype(q, 'f', 4)) fail("q must have dtype float32, got " + dtype_str(q));
  pr.batch = q.shape(0);
  pr.t_q = q.shape(1);
  pr.h_q = q.shape(2);
  pr.head_dim = q.shape(3);
  if (pr.t_q > aa::kMaxChunk)
    fail("q must hold at most " + std::to_string(aa::kMaxChunk) + " tokens (T_q), got shape " + shape_str(q));
  pr.q = static_cast<const float*>(q.data());
  for (int d = 0; d < 4; ++d) pr.q_stride[d] = stride_of(q, d);
  if (!std::isfinite(scale)) fail("scale must be finite, got " + std::to_string(scale));
  pr.scale = static_cast<float>(scale);
  if (block_n < 1) fail("block_n must be >= 1, got " + std::to_string(block_n));
  pr.block_n = block_n;

  const py::array seqlens = as_nd_array(seqlens_obj, "cache_seqlens", 1);
  pr.seqlens = int64_vector(seqlens, "cache_seqlens", pr.batch);
  const std::vector<int64_t> lengths(pr.seqlens, pr.seqlens + pr.batch);
  const py::array k = as_nd_array(k_obj, "k_cache", 4);
  const py::array v = as_nd_array(v_obj, "v_cache", 4);
  pr.h_kv = k.shape(2);
  py::array table;
  cache_operands(pr, k, v, table_obj, table, lengths);

  const int64_t tiles = pr.batch * pr.h_kv;
  const py::array tile_offsets = as_nd_array(tile_offsets_obj, "tile_offsets", 1);
  const py::array program_starts = as_nd_array(program_starts_obj, "program_starts", 1);
  const py::array first_program = as_nd_array(first_program_obj, "first_program", 1);
  const py::array num_pieces = as_nd_array(num_pieces_obj, "num_pieces", 1);
  const py::array piece_offsets = as_nd_array(piece_offsets_obj, "piece_offsets", 1);
  if (program_starts.shape(0) < 2) fail("program_starts must have P + 1 >= 2 entries, got " + shape_str(program_starts));
  pr.num_programs = program_starts.shape(0) - 1;
  pr.tile_offsets = int64_vector(tile_offsets, "tile_offsets", tiles + 1);
  pr.program_starts = int64_vector(program_starts, "program_starts", pr.num_programs + 1);
  pr.first_program = int64_vector(first_program, "first_program", tiles);
  pr.num_pieces = int64_vector(num_pieces, "num_pieces", tiles);
  pr.piece_offsets = int64_vector(piece_offsets, "piece_offsets", tiles + 1);
  check_schedule(pr);

  py::array out = as_nd_array(out_obj, "out", 4);
  py::array lse = as_nd_array(lse_obj, "lse", 3);
  if (!is_dtype(out, 'f', 4)) fail("out must have dtype float32, got " + dtype_str(out));
  if (!is_dtype(lse, 'f', 4)) fail("lse must have dtype float32, got " + dtype_str(lse));
  require_output(out, "out");
  require_output(lse, "lse");
  for (int d = 0; d < 4; ++d)
    if (out.shape(d) != q.shape(d)) fail("out must have q's shape " + shape_str(q) + ", got " + shape_str(out));
  if (lse.shape(0) != pr.batch || lse.shape(1) != pr.h_q || lse.shape(2) != pr.t_q)
    fail("lse must have shape (" + std::to_string(pr.batch) + ", " + std::to_string(pr.h_q) + ", " +
         std::to_string(pr.t_q) + "), got " + shape_str(lse));
  for (const py::array* dst : {&out, &lse}) {
    const std::string name = dst == &out ? "out" : "lse";
    require_disjoint(*dst, q, name, "q");
    require_disjoint(*dst, k, name, "k_cache");
    require_disjoint(*dst, v, name, "v_cache");
  }
  require_disjoint(out, lse, "out", "lse");
  pr.out = static_cast<float*>(out.mutable_data());
  pr.lse = static_cast<float*>(lse.mutable_data());

  const aa::Isa isa = parse_isa(isa_name, aa::isa_supported);
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
  aa::Status status;
  {
    py::gil_scoped_release release;
    status = aa::decode_attention(pr, isa, threads);
  }
  if (status != aa::Status::ok) fail("decode_attention: invalid arguments");
}

// --- spiking neurons (csrc/spiking.cpp) ---------------------------------------------------------------------------

// Optional arrays are None; present ones are C-contiguous, of x's dtype, [T, N] or [N].
struct SpikingArray {
  const py::object& obj;
  const char* name;
  bool per_step;  // [T, N] rather than [N]
  bool output;
};

template <class T>
T* spiking_pointer(const SpikingArray& s, const py::array& x, std::vector<py::array>* outs,
                   std::vector<std::pair<py::array, const char*>>* seen) {
  if (s.obj.is_none()) return nullptr;
  py::array a = as_nd_array(s.obj, s.name, s.per_step ? 2 : 1);
  if (!a.dtype().is(x.dtype())) fail(std::string(s.name) + " must have dtype " + dtype_str(x) + ", got " + dtype_str(a));
  s.output ? require_output(a, s.name) : require_contiguous(a, s.name);
  const bool ok = s.per_step ? (a.shape(0) == x.shape(0) && a.shape(1) == x.shape(1)) : a.shape(0) == x.shape(1);
  if (!ok) fail(std::string(s.name) + " has shape " + shape_str(a) + ", which does not fit x of shape " + shape_str(x));
  for (const auto& [other, other_name] : *seen)
    if (s.output) require_disjoint(a, other, s.name, other_name);
  for (const auto& out : *outs) require_disjoint(out, a, "an output", s.name);
  seen->emplace_back(a, s.name);
  if (s.output) outs->push_back(a);
  return static_cast<T*>(const_cast<void*>(a.data()));
}

accelkit::spiking::NeuronParams spiking_params(double decay, bool decay_input, double v_threshold,
                                               const py::object& v_reset, int surrogate, double alpha,
                                               bool detach_reset) {
  accelkit::spiking::NeuronParams p;
  p.decay = decay;
  p.decay_input = decay_input;
  p.v_threshold = v_threshold;
  p.soft_reset = v_reset.is_none();
  p.v_reset = p.soft_reset ? 0.0 : v_reset.cast<double>();
  p.surrogate = surrogate;
  p.alpha = alpha;
  p.detach_reset = detach_reset;
  if (surrogate < 0 || surrogate > 2) fail("surrogate must be 0 (sigmoid), 1 (atan) or 2 (triangle)");
  if (!(alpha > 0.0) || !std::isfinite(alpha)) fail("alpha must be finite and > 0");
  if (!std::isfinite(decay) || decay < 0.0 || decay > 1.0) fail("decay must be in [0, 1]");
  if (!std::isfinite(v_threshold) || !std::isfinite(p.v_reset)) fail("v_threshold and v_reset must be finite");
  return p;
}

void spiking_check_status(accelkit::spiking::Status status, const std::string& what) {
  if (status == accelkit::spiking::Status::unsupported_isa) fail(what + ": isa not supported by this CPU");
  if (status != accelkit::spiking::Status::ok) fail(what + ": invalid arguments");
}

template <class T>
void spiking_forward_typed(const py::array& x, const py::object& v_init, const py::object& spikes,
                           const py::object& v_seq, const py::object& v_last, const py::object& h_seq,
                           const accelkit::spiking::NeuronParams& p, accelkit::Isa isa, int threads) {
  std::vector<py::array> outs;
  std::vector<std::pair<py::array, const char*>> seen{{x, "x"}};
  accelkit::spiking::ForwardArgs<T> a;
  a.x = static_cast<const T*>(x.data());
  a.t = x.shape(0);
  a.n = x.shape(1);
  a.v_init = spiking_pointer<T>({v_init, "v_init", false, false}, x, &outs, &seen);
  a.spikes = spiking_pointer<T>({spikes, "spikes", true, true}, x, &outs, &seen);
  a.v_seq = spiking_pointer<T>({v_seq, "v_seq", true, true}, x, &outs, &seen);
  a.v_last = spiking_pointer<T>({v_last, "v_last", false, true}, x, &outs, &seen);
  a.h_seq = spiking_pointer<T>({h_seq, "h_seq", true, true}, x, &outs, &seen);
  if (!a.spikes) fail("spikes must be an array");
  accelkit::spiking::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::spiking::forward(a, p, isa, threads);
  }
  spiking_check_status(status, "spiking_forward");
}

void spiking_forward(const py::object& x_obj, const py::object& v_init, const py::object& spikes,
                     const py::object& v_seq, const py::object& v_last, const py::object& h_seq, double decay,
                     bool decay_input, double v_threshold, const py::object& v_reset, int threads,
                     const std::string& isa_name) {
  const py::array x = as_nd_array(x_obj, "x", 2);
  if (!is_dtype(x, 'f', 4) && !is_dtype(x, 'f', 8)) fail("x must be float32 or float64, got " + dtype_str(x));
  require_contiguous(x, "x");
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
  const auto p = spiking_params(decay, decay_input, v_threshold, v_reset, 0, 1.0, false);
  const accelkit::Isa isa = parse_isa(isa_name, accelkit::spiking::isa_supported);
  if (is_dtype(x, 'f', 4))
    spiking_forward_typed<float>(x, v_init, spikes, v_seq, v_last, h_seq, p, isa, threads);
  else
    spiking_forward_typed<double>(x, v_init, spikes, v_seq, v_last, h_seq, p, isa, threads);
}

struct SpikingBackwardObjects {
  py::object h_seq, v_init, grad_spikes, grad_v_seq, grad_v_last, grad_x, grad_v_init;
};

template <class T>
double spiking_backward_typed(const py::array& x, const SpikingBackwardObjects& o, bool want_decay,
                              const accelkit::spiking::NeuronParams& p, accelkit::Isa isa, int threads) {
  std::vector<py::array> outs;
  std::vector<std::pair<py::array, const char*>> seen{{x, "x"}};
  accelkit::spiking::BackwardArgs<T> a;
  a.x = static_cast<const T*>(x.data());
  a.t = x.shape(0);
  a.n = x.shape(1);
  a.h_seq = spiking_pointer<T>({o.h_seq, "h_seq", true, false}, x, &outs, &seen);
  a.v_init = spiking_pointer<T>({o.v_init, "v_init", false, false}, x, &outs, &seen);
  a.grad_spikes = spiking_pointer<T>({o.grad_spikes, "grad_spikes", true, false}, x, &outs, &seen);
  a.grad_v_seq = spiking_pointer<T>({o.grad_v_seq, "grad_v_seq", true, false}, x, &outs, &seen);
  a.grad_v_last = spiking_pointer<T>({o.grad_v_last, "grad_v_last", false, false}, x, &outs, &seen);
  a.grad_x = spiking_pointer<T>({o.grad_x, "grad_x", true, true}, x, &outs, &seen);
  a.grad_v_init = spiking_pointer<T>({o.grad_v_init, "grad_v_init", false, true}, x, &outs, &seen);
  if (!a.grad_x) fail("grad_x must be an array");
  double grad_decay = 0.0;
  a.grad_decay = want_decay ? &grad_decay : nullptr;
  accelkit::spiking::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::spiking::backward(a, p, isa, threads);
  }
  spiking_check_status(status, "spiking_backward");
  return grad_decay;
}

// Returns d loss / d decay (0.0 unless want_decay).
double spiking_backward(const py::object& x_obj, const py::object& h_seq, const py::object& v_init,
                        const py::object& grad_spikes, const py::object& grad_v_seq, const py::object& grad_v_last,
                        const py::object& grad_x, const py::object& grad_v_init, bool want_decay, double decay,
                        bool decay_input, double v_threshold, const py::object& v_reset, int surrogate, double alpha,
                        bool detach_reset, int threads, const std::string& isa_name) {
  const py::array x = as_nd_array(x_obj, "x", 2);
  if (!is_dtype(x, 'f', 4) && !is_dtype(x, 'f', 8)) fail("x must be float32 or float64, got " + dtype_str(x));
  require_contiguous(x, "x");
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
  const auto p = spiking_params(decay, decay_input, v_threshold, v_reset, surrogate, alpha, detach_reset);
  const accelkit::Isa isa = parse_isa(isa_name, accelkit::spiking::isa_supported);
  const SpikingBackwardObjects o{h_seq, v_init, grad_spikes, grad_v_seq, grad_v_last, grad_x, grad_v_init};
  return is_dtype(x, 'f', 4) ? spiking_backward_typed<float>(x, o, want_decay, p, isa, threads)
                             : spiking_backward_typed<double>(x, o, want_decay, p, isa, threads);
}

// --- WKV (csrc/wkv.cpp) -----------------------------------------------------------------------------------------

// A C-contiguous float32 or float64 array of the given shape (and dtype, when `like` is given).
py::array wkv_array(const py::object& obj, const std::string& name, std::vector<py::ssize_t> shape,
                    const py::array* like, bool output) {
  py::array a = as_nd_array(obj, name, static_cast<int>(shape.size()));
  if (!is_dtype(a, 'f', 4) && !is_dtype(a, 'f', 8)) fail(name + " must be float32 or float64, got " + dtype_str(a));
  if (like && !a.dtype().is(like->dtype()))
    fail(name + " must have dtype " + dtype_str(*like) + ", got " + dtype_str(a));
  output ? require_output(a, name) : require_contiguous(a, name);
  for (size_t d = 0; d < shape.size(); ++d)
    if (a.shape(static_cast<py::ssize_t>(d)) != shape[d]) {
      std::string want = "(";
      for (size_t e = 0; e < shape.size(); ++e) want += (e ? ", " : "") + std::to_string(shape[e]);
      fail(name + " must have shape " + want + (shape.size() == 1 ? ",)" : ")") + ", got " + shape_str(a));
    }
  return a;
}

struct WkvInputs {
  py::array w, u, k, v;
  int64_t batch, steps, channels;
};

WkvInputs wkv_inputs(const py::object& w_obj, const py::object& u_obj, const py::object& k_obj,
                     const py::object& v_obj) {
  py::array k = as_nd_array(k_obj, "k", 3);
  const std::vector<py::ssize_t> bt_c{k.shape(0), k.shape(1), k.shape(2)};
  k = wkv_array(k_obj, "k", bt_c, nullptr, false);
  WkvInputs in{wkv_array(w_obj, "w", {k.shape(2)}, &k, false), wkv_array(u_obj, "u", {k.shape(2)}, &k, false), k,
               wkv_array(v_obj, "v", bt_c, &k, false), k.shape(0), k.shape(1), k.shape(2)};
  return in;
}

template <class T>
aw::Problem<T> wkv_problem(const WkvInputs& in) {
  return aw::Problem<T>{in.batch, in.steps, in.channels, static_cast<const T*>(in.w.data()),
                        static_cast<const T*>(in.u.data()), static_cast<const T*>(in.k.data()),
                        static_cast<const T*>(in.v.data())};
}

void require_threads(int threads) {
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
}

void wkv_forward(const py::object& w_obj, const py::object& u_obj, const py::object& k_obj, const py::object& v_obj,
                 const py::object& y_obj, int threads) {
  const WkvInputs in = wkv_inputs(w_obj, u_obj, k_obj, v_obj);
  py::array y = wkv_array(y_obj, "y", {in.batch, in.steps, in.channels}, &in.k, true);
  for (const auto& [src, name] : {std::pair{&in.w, "w"}, {&in.u, "u"}, {&in.k, "k"}, {&in.v, "v"}})
    require_disjoint(y, *src, "y", name);
  require_threads(threads);
  // Everything that touches a Python object (dtype, buffers) happens before the GIL is released.
  const bool single = is_dtype(in.k, 'f', 4);
  void* out = y.mutable_data();
  const aw::Problem<float> pf = wkv_problem<float>(in);
  const aw::Problem<double> pd = wkv_problem<double>(in);
  aw::Status status;
  {
    py::gil_scoped_release release;
    status = single ? aw::forward(pf, static_cast<float*>(out), threads)
                    : aw::forward(pd, static_cast<double*>(out), threads);
  }
  if (status != aw::Status::ok) fail("wkv_forward: invalid arguments");
}

// The buffers of one backward call, taken while the GIL is held.
struct WkvGrads {
  const void* gy;
  void *gk, *gv, *gw, *gu;
};

template <class T>
aw::Status wkv_backward_typed(const aw::Problem<T>& pr, const WkvGrads& g, int threads) {
  return aw::backward(pr, static_cast<const T*>(g.gy), static_cast<T*>(g.gk), static_cast<T*>(g.gv),
                      static_cast<T*>(g.gw), static_cast<T*>(g.gu), threads);
}

void wkv_backward(const py::object& w_obj, const py::object& u_obj, const py::object& k_obj, const py::object& v_obj,
                  const py::object& gy_obj, const py::object& gk_obj, const py::object& gv_obj,
                  const py::object& gw_obj, const py::object& gu_obj, int threads) {
  const WkvInputs in = wkv_inputs(w_obj, u_obj, k_obj, v_obj);
  const std::vector<py::ssize_t> btc{in.batch, in.steps, in.channels}, bc{in.batch, in.channels};
  const py::array gy = wkv_array(gy_obj, "gy", btc, &in.k, false);
  py::array gk = wkv_array(gk_obj, "gk", btc, &in.k, true);
  py::array gv = wkv_array(gv_obj, "gv", btc, &in.k, true);
  py::array gw = wkv_array(gw_obj, "gw", bc, &in.k, true);
  py::array gu = wkv_array(gu_obj, "gu", bc, &in.k, true);
  const std::pair<const py::array*, const char*> outs[] = {{&gk, "gk"}, {&gv, "gv"}, {&gw, "gw"}, {&gu, "gu"}};
  const std::pair<const py::array*, const char*> ins[] = {{&in.w, "w"}, {&in.u, "u"}, {&in.k, "k"}, {&in.v, "v"},
                                                          {&gy, "gy"}};
  for (size_t i = 0; i < 4; ++i) {
    for (const auto& [src, name] : ins) require_disjoint(*outs[i].first, *src, outs[i].second, name);
    for (size_t j = i + 1; j < 4; ++j) require_disjoint(*outs[i].first, *outs[j].first, outs[i].second, outs[j].second);
  }
  require_threads(threads);
  const bool single = is_dtype(in.k, 'f', 4);
  const WkvGrads g{gy.data(), gk.mutable_data(), gv.mutable_data(), gw.mutable_data(), gu.mutable_data()};
  const aw::Problem<float> pf = wkv_problem<float>(in);
  const aw::Problem<double> pd = wkv_problem<double>(in);
  aw::Status status;
  {
    py::gil_scoped_release release;
    status = single ? wkv_backward_typed(pf, g, threads) : wkv_backward_typed(pd, g, threads);
  }
  if (status != aw::Status::ok) fail("wkv_backward: invalid arguments");
}


// --- delta rule (csrc/delta_rule.cpp) ---------------------------------------------------------------------------

// A C-contiguous float32 array of exactly `shape`.
py::array dr_array(const py::object& obj, const std::string& name, const std::vector<py::ssize_t>& shape,
                   bool output) {
  py::array a = as_nd_array(obj, name, static_cast<int>(shape.size()));
  if (!is_dtype(a, 'f', 4)) fail(name + " must be float32, got " + dtype_str(a));
  output ? require_output(a, name) : require_contiguous(a, name);
  for (size_t d = 0; d < shape.size(); ++d)
    if (a.shape(static_cast<py::ssize_t>(d)) != shape[d]) fail(name + " has the wrong shape " + shape_str(a));
  return a;
}

// The arrays of one delta-rule call, checked, and the Problem over them (the arrays keep the buffers alive).
struct DrCall {
  py::array q, k, v, beta, g, h0, cu, o, ht;
  accelkit::delta_rule::Problem problem;
};

DrCall dr_call(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj, const py::object& beta_obj,
               const py::object& g_obj, const py::object& h0_obj, const py::object& cu_obj, const py::object& o_obj,
               const py::object& ht_obj, double scale, int threads) {
  DrCall c;
  const py::array q0 = as_nd_array(q_obj, "q", 3), v0 = as_nd_array(v_obj, "v", 3);
  const py::ssize_t rows = q0.shape(0), heads = q0.shape(1), kd = q0.shape(2), vd = v0.shape(2);
  if (kd < 1 || vd < 1) fail("the head dims K and V must be >= 1");
  c.q = dr_array(q_obj, "q", {rows, heads, kd}, false);
  c.k = dr_array(k_obj, "k", {rows, heads, kd}, false);
  c.v = dr_array(v_obj, "v", {rows, heads, vd}, false);
  c.beta = dr_array(beta_obj, "beta", {rows, heads}, false);
  c.cu = as_nd_array(cu_obj, "cu_seqlens", 1);
  if (c.cu.shape(0) < 1) fail("cu_seqlens must have N + 1 >= 1 entries");
  const int64_t n = c.cu.shape(0) - 1;
  const int64_t* offsets = int64_vector(c.cu, "cu_seqlens", n + 1);
  if (offsets[0] != 0 || offsets[n] != rows) fail("cu_seqlens must start at 0 and end at the number of rows");
  for (int64_t i = 0; i < n; ++i)
    if (offsets[i + 1] < offsets[i]) fail("cu_seqlens must never decrease");
  std::vector<std::pair<const py::array*, const char*>> inputs{
      {&c.q, "q"}, {&c.k, "k"}, {&c.v, "v"}, {&c.beta, "beta"}};
  if (!g_obj.is_none()) {
    c.g = dr_array(g_obj, "g", {rows, heads}, false);
    inputs.emplace_back(&c.g, "g");
  }
  if (!h0_obj.is_none()) {
    c.h0 = dr_array(h0_obj, "initial_state", {n, heads, kd, vd}, false);
    inputs.emplace_back(&c.h0, "initial_state");
  }
  c.o = dr_array(o_obj, "o", {rows, heads, vd}, true);
  c.ht = dr_array(ht_obj, "final_state", {n, heads, kd, vd}, true);
  for (const auto& [src, name] : inputs) {
    require_disjoint(c.o, *src, "o", name);
    require_disjoint(c.ht, *src, "final_state", name);
  }
  require_disjoint(c.o, c.ht, "o", "final_state");
  require_threads(threads);
  c.problem = {n, heads, kd, vd, offsets,
               static_cast<const float*>(c.q.data()), static_cast<const float*>(c.k.data()),
               static_cast<const float*>(c.v.data()), static_cast<const float*>(c.beta.data()),
               g_obj.is_none() ? nullptr : static_cast<const float*>(c.g.data()),
               h0_obj.is_none() ? nullptr : static_cast<const float*>(c.h0.data()),
               static_cast<float>(scale)};
  return c;
}

void delta_rule_recurrent(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                          const py::object& beta_obj, const py::object& g_obj, const py::object& h0_obj,
                          const py::object& cu_obj, const py::object& o_obj, const py::object& ht_obj, double scale,
                          int threads) {
  DrCall c = dr_call(q_obj, k_obj, v_obj, beta_obj, g_obj, h0_obj, cu_obj, o_obj, ht_obj, scale, threads);
  float* o = static_cast<float*>(c.o.mutable_data());
  float* ht = static_cast<float*>(c.ht.mutable_data());
  accelkit::delta_rule::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::delta_rule::forward(c.problem, o, ht, threads);
  }
  if (status != accelkit::delta_rule::Status::ok) fail("delta_rule_recurrent: invalid arguments");
}

void delta_rule_chunk(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                      const py::object& beta_obj, const py::object& g_obj, const py::object& h0_obj,
                      const py::object& cu_obj, const py::object& o_obj, const py::object& ht_obj, double scale,
                      int64_t chunk_size, const std::string& isa_name, int threads) {
  DrCall c = dr_call(q_obj, k_obj, v_obj, beta_obj, g_obj, h0_obj, cu_obj, o_obj, ht_obj, scale, threads);
  if (chunk_size < 1 || chunk_size > accelkit::delta_rule::kMaxChunk)
    fail("chunk_size must lie in [1, " + std::to_string(accelkit::delta_rule::kMaxChunk) + "], got " +
         std::to_string(chunk_size));
  const accelkit::Isa isa = parse_isa(isa_name, accelkit::delta_rule::chunk_isa_supported);
  float* o = static_cast<float*>(c.o.mutable_data());
  float* ht = static_cast<float*>(c.ht.mutable_data());
  accelkit::delta_rule::Status status;
  {
    py::gil_scoped_release release;
    status = accelkit::delta_rule::chunk_forward(c.problem, chunk_size, o, ht, isa, threads);
  }
  if (status == accelkit::delta_rule::Status::unsupported_isa) fail("delta_rule_chunk: isa not supported by this CPU");
  if (status != accelkit::delta_rule::Status::ok) fail("delta_rule_chunk: invalid arguments");
}

// --- trace text (csrc/text_rows.cpp) ------------------------------------------------------------------------------

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

// --- SCALE-Sim read buffers (csrc/scalesim.cpp) ----------------------------------------------------------------

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


// --- CALC prefetch words (csrc/trace_words.cpp) ----------------------------------------------------------------

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

PYBIND11_MODULE(_C, m) {
  m.doc() = "accelkit C++ CPU kernels";
  m.def("cpu_features", [] {
    const auto f = accelkit::cpu_features();
    py::dict d;
    d["popcnt"] = f.popcnt;
    d["avx2"] = f.avx2;
    d["avx512_vpopcntdq"] = f.avx512_vpopcntdq;
    d["openmp"] = accelkit::has_openmp();
    d["threads"] = accelkit::max_threads();
    return d;
  });

  m.def("empty_result", &empty_result, py::arg("rows"), py::arg("cols"), py::arg("dtype"),
        "An uninitialised C-contiguous [rows, cols] float32/float64 array from the result pool (2 MiB-aligned "
        "buffers on transparent huge pages, reused after the array dies).");
  m.def("binary_pack", &binary_pack, py::arg("x"), py::arg("out"), py::arg("word_bits") = 32,
        py::arg("isa") = "auto",
        "Pack sign bits of x (float32/float64 [R, K], any strides) into out ([R, ceil(K / word_bits)] words, "
        "C-contiguous): bit 1 where x is not >= 0, LSB first, padding 0.");
  m.def("binary_gemm", &binary_gemm, py::arg("a_bits"), py::arg("w_bits"), py::arg("k"), py::arg("out"),
        py::arg("isa") = "auto",
        "out[i, j] = k - 2 * popcount(a_bits[i] xor w_bits[j]): the +-1 dot products of packed rows "
        "(a_bits [M, W], w_bits [N, W], 32- or 64-bit words; out int32 [M, N]). Padding bits past k are ignored.");
  m.def("binary_gemm_new", &binary_gemm_new, py::arg("a_bits"), py::arg("w_bits"), py::arg("k"),
        py::arg("dtype") = "int32", py::arg("isa") = "auto",
        "binary_gemm into a new [M, N] array of dtype 'int32' or 'float32' (the cast fused into the GEMM; exact "
        "for k <= 2^24), allocated in 2 MiB huge pages where the OS has them.");
  m.def("spike_gemm", &spike_gemm, py::arg("s_bits"), py::arg("w_bits"), py::arg("out"), py::arg("isa") = "auto",
        "out[i, j] = popcount(s_bits[i]) - 2 * popcount(s_bits[i] and w_bits[j]): spikes (bit 1 = spike) times "
        "+-1 weights (bit 1 = -1).");
  m.def("binary_isa", [] { return std::string(ab::isa_name(ab::best_isa())); },
        "The GEMM path isa='auto' selects on this CPU: 'avx512', 'avx2' or 'scalar'.");
  m.def("binary_isa_supported", [](const std::string& isa) { return isa_available(isa, ab::isa_supported); });
  m.def(
      "binary_peak_probe",
      [](int threads) {
        if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
        if (threads == 0) threads = accelkit::max_threads();
        double clock = 0.0, rate = 0.0, rate_all = 0.0;
        {
          py::gil_scoped_release release;
          clock = ab::measure_clock_hz();
          rate = ab::measure_vpopcntq_per_second();
          rate_all = ab::measure_vpopcntq_per_second_parallel(threads);
        }
        py::dict d;
        d["clock_hz"] = clock;
        d["vpopcntq_per_second"] = rate;
        d["threads"] = threads;
        d["vpopcntq_per_second_all_threads"] = rate_all;
        return d;
      },
      py::arg("threads") = 0,
      "Measured core clock (dependent-add chain), the VPOPCNTQ zmm rate of one thread, and the aggregate rate of "
      "`threads` threads running the probe at once; 0 where unavailable.");

  m.def("decode_attention", &decode_attention, py::arg("q"), py::arg("k_cache"), py::arg("v_cache"),
        py::arg("cache_seqlens"), py::arg("block_table"), py::arg("scale"), py::arg("block_n"),
        py::arg("tile_offsets"), py::arg("program_starts"), py::arg("first_program"), py::arg("num_pieces"),
        py::arg("piece_offsets"), py::arg("out"), py::arg("lse"), py::arg("isa") = "auto", py::arg("threads") = 0,
        "Decode attention of q (float32 [B, T_q, H_q, D], T_q <= 16, any strides) over a KV cache (float32 or "
        "bfloat16 bits as int16; [B, T_cache, H_kv, D], or pages [num_pages, page_size, H_kv, D] with block_table "
        "int32 [B, max_blocks]; rows of D contiguous), cache_seqlens int64 [B]: query t sees keys j <= "
        "cache_seqlens[b] - T_q + t. The work is partitioned by the schedule arrays of "
        "kernels/lean_attention/schedule.py (int64). Writes out float32 [B, T_q, H_q, D] and the natural-log lse "
        "float32 [B, H_q, T_q], both C-contiguous; a query that sees no key gets 0 and -inf.");
  m.def("decode_attention_isa", [] { return std::string(aa::isa_name(aa::best_isa())); },
        "The decode attention path isa='auto' selects on this CPU: 'avx512', 'avx2' or 'scalar'.");
  m.def("decode_attention_isa_supported",
        [](const std::string& isa) { return isa_available(isa, aa::isa_supported); });

  m.def("spiking_forward", &spiking_forward, py::arg("x"), py::arg("v_init"), py::arg("spikes"), py::arg("v_seq"),
        py::arg("v_last"), py::arg("h_seq"), py::arg("decay"), py::arg("decay_input"), py::arg("v_threshold"),
        py::arg("v_reset"), py::arg("threads") = 0, py::arg("isa") = "auto",
        "Multi-step IF/LIF/PLIF forward over x [T, N] (float32 or float64, C-contiguous): writes spikes [T, N] and, "
        "where given, v_seq [T, N], v_last [N] and h_seq [T, N]. v_init [N] or None (v_reset; 0 when v_reset is "
        "None, the soft reset). decay is 1/tau (LIF), sigmoid(w) (PLIF) or 0 with decay_input=False (IF).");
  m.def("spiking_backward", &spiking_backward, py::arg("x"), py::arg("h_seq"), py::arg("v_init"),
        py::arg("grad_spikes"), py::arg("grad_v_seq"), py::arg("grad_v_last"), py::arg("grad_x"),
        py::arg("grad_v_init"), py::arg("want_decay"), py::arg("decay"), py::arg("decay_input"),
        py::arg("v_threshold"), py::arg("v_reset"), py::arg("surrogate"), py::arg("alpha"), py::arg("detach_reset"),
        py::arg("threads") = 0, py::arg("isa") = "auto",
        "Surrogate-gradient BPTT of spiking_forward: writes grad_x [T, N] and grad_v_init [N] (when given) and "
        "returns d loss / d decay when want_decay. H is recomputed from x unless h_seq is given. surrogate: 0 "
        "sigmoid, 1 atan, 2 triangle.");
  m.def("spiking_isa", [] { return std::string(accelkit::isa_name(accelkit::spiking::best_isa())); },
        "The spiking-neuron path isa='auto' selects on this CPU: 'avx2' or 'scalar'.");
  m.def("spiking_isa_supported",
        [](const std::string& isa) { return isa_available(isa, accelkit::spiking::isa_supported); });

  m.def("delta_rule_recurrent", &delta_rule_recurrent, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("beta"),
        py::arg("g"), py::arg("initial_state"), py::arg("cu_seqlens"), py::arg("o"), py::arg("final_state"),
        py::arg("scale"), py::arg("threads") = 0,
        "The delta rule's token recurrence: o [rows, H, V] and final_state [N, H, K, V] from float32 C-contiguous "
        "q, k [rows, H, K], v [rows, H, V], beta and g (or None) [rows, H], initial_state [N, H, K, V] (or None) and "
        "int64 prefix sums cu_seqlens [N + 1].");
  m.def("delta_rule_chunk", &delta_rule_chunk, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("beta"),
        py::arg("g"), py::arg("initial_state"), py::arg("cu_seqlens"), py::arg("o"), py::arg("final_state"),
        py::arg("scale"), py::arg("chunk_size"), py::arg("isa") = "auto", py::arg("threads") = 0,
        "The delta rule's chunk form (WY, chunk_size tokens per chunk, 1 to 256): the same arrays and outputs as "
        "delta_rule_recurrent, one OpenMP program per (sequence, head).");
  m.def("delta_rule_chunk_isa", [] { return std::string(accelkit::isa_name(accelkit::delta_rule::chunk_best_isa())); },
        "The delta-rule chunk path isa='auto' selects on this CPU: 'avx512', 'avx2' or 'scalar'.");
  m.def("delta_rule_chunk_isa_supported",
        [](const std::string& isa) { return isa_available(isa, accelkit::delta_rule::chunk_isa_supported); });
  m.def("wkv_forward", &wkv_forward, py::arg("w"), py::arg("u"), py::arg("k"), py::arg("v"), py::arg("y"),
        py::arg("threads") = 0,
        "SpikeGPT's WKV: y [B, T, C] from w, u [C] and k, v [B, T, C], all float32 or all float64, C-contiguous.");
  m.def("wkv_backward", &wkv_backward, py::arg("w"), py::arg("u"), py::arg("k"), py::arg("v"), py::arg("gy"),
        py::arg("gk"), py::arg("gv"), py::arg("gw"), py::arg("gu"), py::arg("threads") = 0,
        "Gradients of WKV: gk, gv [B, T, C] and the per-sequence gw, gu [B, C] (sum them over B) from gy [B, T, C].");
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
