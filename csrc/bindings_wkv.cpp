// pybind11 bindings of SpikeGPT's WKV (csrc/wkv.cpp): forward and backward. Every check runs here, before the GIL is
// released, and fails with ValueError naming the argument; the module is csrc/bindings.cpp, the shared checks
// csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/wkv.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace aw = accelkit::wkv;
namespace {

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

}  // namespace

void bind_wkv(py::module_& m) {
  m.def("wkv_forward", &wkv_forward, py::arg("w"), py::arg("u"), py::arg("k"), py::arg("v"), py::arg("y"),
        py::arg("threads") = 0,
        "SpikeGPT's WKV: y [B, T, C] from w, u [C] and k, v [B, T, C], all float32 or all float64, C-contiguous.");
  m.def("wkv_backward", &wkv_backward, py::arg("w"), py::arg("u"), py::arg("k"), py::arg("v"), py::arg("gy"),
        py::arg("gk"), py::arg("gv"), py::arg("gw"), py::arg("gu"), py::arg("threads") = 0,
        "Gradients of WKV: gk, gv [B, T, C] and the per-sequence gw, gu [B, C] (sum them over B) from gy [B, T, C].");
}

}  // namespace bindings
}  // namespace accelkit
