// The pybind11 module accelkit._C: thin bindings over the framework-free kernels in csrc/include/accelkit/. Kernels
// take NumPy arrays (torch CPU tensors convert with .numpy() without a copy) and write into an output the caller
// allocated or one from the result pool. Each op's argument checks and marshalling are in csrc/bindings_<op>.cpp,
// the shared checks in csrc/bindings.h; every check happens before the GIL is released and fails with ValueError
// naming the argument, so no input reaches a kernel that could make it read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "accelkit/cpu_features.h"
#include "bindings.h"

namespace py = pybind11;
namespace bind = accelkit::bindings;

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
  m.def("empty_result", &bind::empty_result, py::arg("rows"), py::arg("cols"), py::arg("dtype"),
        "An uninitialised C-contiguous [rows, cols] float32/float64 array from the result pool (2 MiB-aligned "
        "buffers on transparent huge pages, reused after the array dies).");
  bind::bind_binary(m);
  bind::bind_attention(m);
  bind::bind_spiking(m);
  bind::bind_wkv(m);
  bind::bind_delta_rule(m);
  bind::bind_sim(m);
}
