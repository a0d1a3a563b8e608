// pybind11 bindings of the spiking neurons (csrc/spiking.cpp): multi-step forward and BPTT. Every check runs here,
// before the GIL is released, and fails with ValueError naming the argument; the module is csrc/bindings.cpp, the
// shared checks csrc/bindings.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "accelkit/spiking.h"
#include "bindings.h"

namespace accelkit {
namespace bindings {
namespace {

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

}  // namespace

void bind_spiking(py::module_& m) {
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
}

}  // namespace bindings
}  // namespace accelkit
