// Runtime CPU-feature detection, so portable builds can pick AVX2 or AVX-512 kernels per call.
#pragma once

#include <cstring>
#include <initializer_list>

#ifdef _OPENMP
#include <omp.h>
#endif

// x86 with GCC or clang: the kernels build their AVX2 and AVX-512 paths per function (target attributes), so a
// portable build needs no -march flag.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define ACCELKIT_X86 1
#else
#define ACCELKIT_X86 0
#endif

// Vector loops stay vectorised only when the step functions they call are inlined into them, which GCC's
// heuristics do not always do for the larger ones; NOINLINE keeps a cold path out of a hot loop.
#if defined(__GNUC__) || defined(__clang__)
#define ACCELKIT_ALWAYS_INLINE inline __attribute__((always_inline))
#define ACCELKIT_NOINLINE __attribute__((noinline))
#else
#define ACCELKIT_ALWAYS_INLINE inline
#define ACCELKIT_NOINLINE
#endif

namespace accelkit {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512_vpopcntdq = false;  // AVX512F + AVX512VPOPCNTDQ: 512-bit popcount, 8 words per instruction
  bool popcnt = false;
};

inline CpuFeatures cpu_features() {
  CpuFeatures f;
#if ACCELKIT_X86
  __builtin_cpu_init();
  f.popcnt = __builtin_cpu_supports("popcnt");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avx512_vpopcntdq = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
  return f;
}

// The vector paths an op's kernels are built for. What each path needs of the CPU is the op's own isa_supported
// (the binary GEMM's AVX-512 path needs VPOPCNTDQ, decode attention's needs BW/VL/DQ and FMA).
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::scalar:
      return "scalar";
  }
  return "unknown";
}

// The Isa called `name` ("avx512", "avx2" or "scalar"); false for any other name.
inline bool isa_from_name(const char* name, Isa* isa) {
  for (Isa candidate : {Isa::avx512, Isa::avx2, Isa::scalar}) {
    if (std::strcmp(isa_name(candidate), name) == 0) {
      *isa = candidate;
      return true;
    }
  }
  return false;
}

// The widest path `supported` accepts on this CPU.
template <typename Supported>
Isa best_isa(Supported supported) {
  if (supported(Isa::avx512)) return Isa::avx512;
  if (supported(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
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
