// Runtime CPU-feature detection, so portable builds can pick AVX2 or AVX-512 kernels per call.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace accelkit {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512_vpopcntdq = false;  // AVX512F + AVX512VPOPCNTDQ: 512-bit popcount, 8 words per instruction
  bool popcnt = false;
};

inline CpuFeatures cpu_features() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.popcnt = __builtin_cpu_supports("popcnt");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avx512_vpopcntdq = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
  return f;
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace accelkit
