// The shared half of the pybind11 layer (csrc/bindings*.cpp): argument checks that fail with ValueError naming the
// argument, the isa parser, and the pool of result buffers. Header-only (inline), so each bindings file compiles
// alone; the pool is one object for the whole module (an inline function's static).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "accelkit/cpu_features.h"

namespace accelkit {
namespace bindings {

namespace py = pybind11;

[[noreturn]] inline void fail(const std::string& message) { throw py::value_error(message); }

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline py::array as_array(const py::object& obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    fail(name + " must be a numpy array, got " + py::str(py::type::of(obj)).cast<std::string>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != 2) fail(name + " must be 2-D, got shape " + shape_str(a));
  if (!a.dtype().attr("isnative").cast<bool>()) fail(name + " must be in native byte order, got " + dtype_str(a));
  if (reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() != 0) fail(name + " must be aligned");
  return a;
}

inline void require_contiguous(const py::array& a, const std::string& name) {
  if (!(a.flags() & py::array::c_style)) fail(name + " must be C-contiguous");
}

inline void require_output(const py::array& a, const std::string& name) {
  require_contiguous(a, name);
  if (!a.writeable()) fail(name + " must be writeable");
}

inline void require_int32(const py::array& a, const std::string& name) {
  if (a.dtype().kind() != 'i' || a.itemsize() != 4) fail(name + " must have dtype int32, got " + dtype_str(a));
}

// First and one-past-last byte an array can touch, for the overlap check.
inline std::pair<std::uintptr_t, std::uintptr_t> byte_range(const py::array& a) {
  auto lo = reinterpret_cast<std::intptr_t>(a.data());
  auto hi = lo;
  if (a.size() == 0) return {0, 0};
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    const std::intptr_t span = static_cast<std::intptr_t>(a.shape(d) - 1) * a.strides(d);
    (span < 0 ? lo : hi) += span;
  }
  return {static_cast<std::uintptr_t>(lo), static_cast<std::uintptr_t>(hi + a.itemsize())};
}

inline void require_disjoint(const py::array& out, const py::array& in, const std::string& out_name,
                      const std::string& in_name) {
  const auto [a0, a1] = byte_range(out);
  const auto [b0, b1] = byte_range(in);
  if (a0 < b1 && b0 < a1) fail(out_name + " must not overlap " + in_name);
}

// The one parser of every op's `isa` argument; `supported` is that op's own CPU check.
inline accelkit::Isa named_isa(const std::string& isa) {
  accelkit::Isa parsed;
  if (!accelkit::isa_from_name(isa.c_str(), &parsed))
    fail("isa must be 'auto', 'avx512', 'avx2' or 'scalar', got '" + isa + "'");
  return parsed;
}

inline accelkit::Isa parse_isa(const std::string& isa, bool (*supported)(accelkit::Isa)) {
  if (isa == "auto") return accelkit::best_isa(supported);
  const accelkit::Isa parsed = named_isa(isa);
  if (!supported(parsed)) fail("isa '" + isa + "' is not supported by this CPU");
  return parsed;
}

inline bool isa_available(const std::string& isa, bool (*supported)(accelkit::Isa)) {
  return isa == "auto" || supported(named_isa(isa));
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

inline ResultPool& result_pool() {
  // Never destroyed: a result that outlives the module at interpreter exit must still find the pool.
  static ResultPool* pool = new ResultPool();
  return *pool;
}

// A new C-contiguous [rows, cols] array of T that owns its buffer (given back when the last view of it goes, torch
// tensors made by torch.from_numpy included).
template <typename T>
inline py::array_t<T> new_result(int64_t rows, int64_t cols) {
  auto* buffer = new Buffer(result_pool().take(static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(T)));
  py::capsule owner(buffer, [](void* p) {
    auto* b = static_cast<Buffer*>(p);
    result_pool().give_back(*b);
    delete b;
  });
  return py::array_t<T>({rows, cols}, static_cast<T*>(buffer->data), owner);
}

// An uninitialised [rows, cols] result buffer from the pool, for launchers that allocate outputs in Python.
inline py::array empty_result(int64_t rows, int64_t cols, const std::string& dtype) {
  if (rows < 0 || cols < 0) fail("rows and cols must be >= 0");
  if (dtype == "float32") return new_result<float>(rows, cols);
  if (dtype == "float64") return new_result<double>(rows, cols);
  fail("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

// An n-D array with the checks of as_array; strides must be whole elements.
inline py::array as_nd_array(const py::object& obj, const std::string& name, int ndim) {
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

inline int64_t stride_of(const py::array& a, int d) { return static_cast<int64_t>(a.strides(d) / a.itemsize()); }

inline bool is_dtype(const py::array& a, char kind, py::ssize_t itemsize) {
  return a.dtype().kind() == kind && a.itemsize() == itemsize;
}

// A 1-D C-contiguous int64 array of `length` entries.
inline const int64_t* int64_vector(const py::array& a, const std::string& name, int64_t length) {
  if (!is_dtype(a, 'i', 8)) fail(name + " must have dtype int64, got " + dtype_str(a));
  require_contiguous(a, name);
  if (a.shape(0) != length)
    fail(name + " must have " + std::to_string(length) + " entries, got shape " + shape_str(a));
  return static_cast<const int64_t*>(a.data());
}

inline void require_threads(int threads) {
  if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default), got " + std::to_string(threads));
}

void bind_binary(py::module_& m);
void bind_attention(py::module_& m);
void bind_spiking(py::module_& m);
void bind_wkv(py::module_& m);
void bind_delta_rule(py::module_& m);
void bind_sim(py::module_& m);

}  // namespace bindings
}  // namespace accelkit
