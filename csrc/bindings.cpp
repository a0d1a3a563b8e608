// The only pybind11 file: thin bindings over the framework-free kernels in csrc/include/accelkit/.
#include <pybind11/pybind11.h>

#include "accelkit/cpu_features.h"

namespace py = pybind11;

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
}
