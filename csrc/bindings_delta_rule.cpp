// pybind11 bindings of the delta rule (csrc/delta_rule.cpp, csrc/delta_rule_chunk.cpp): token recurrence and chunk
// form. Every check runs here, before the GIL is released, and fails with ValueError naming the argument; the module
// is csrc/bindings.cpp, the shared checks csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/delta_rule.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace {

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

}  // namespace

void bind_delta_rule(py::module_& m) {
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
}

}  // namespace bindings
}  // namespace accelkit
