// pybind11 bindings of the binary ops (csrc/binary.cpp, csrc/binary_probe.cpp): bit packing, the XNOR/popcount GEMMs
// and the peak probe. Every check runs here, before the GIL is released, and fails with ValueError naming the
// argument; the module is csrc/bindings.cpp, the shared checks csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/binary.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace ab = accelkit::binary;
namespace {

// Bits per word of a packed operand: 32 for (u)int32, 64 for (u)int64 (torch has no uint64; the launchers pass
// int64 bit patterns).
int word_bits_of(const py::array& a, const std::string& name) {
  const char kind = a.dtype().kind();
  if ((kind != 'i' && kind != 'u') || (a.itemsize() != 4 && a.itemsize() != 8))
    fail(name + " must hold 32- or 64-bit integer words, got dtype " + dtype_str(a));
  return static_cast<int>(8 * a.itemsize());
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

}  // namespace

void bind_binary(py::module_& m) {
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
}

}  // namespace bindings
}  // namespace accelkit
