// What every framework-free header of csrc/include/accelkit/ needs to compile three ways: as host C++ in the CPU
// kernels, under nvcc in the .cu files, and under NVRTC (the CuPy launchers), which has no standard library.
#pragma once

#if defined(__CUDACC_RTC__)
// NVRTC has no standard library headers; these are the LP64 widths every CUDA target uses.
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef int int32_t;
typedef long long int64_t;
#else
#include <cmath>
#include <cstdint>
#include <cstring>
#endif

// Math shared by host and device.
#if defined(__CUDACC__)
#define ACCELKIT_HD __host__ __device__ __forceinline__
#else
#define ACCELKIT_HD inline
#endif

// The same, forced inline on the host too: loops over channels or neurons vectorise only when every step function
// is inlined into them, and GCC's heuristics leave the larger ones as calls.
#if defined(__CUDACC__)
#define ACCELKIT_HD_INLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define ACCELKIT_HD_INLINE inline __attribute__((always_inline))
#else
#define ACCELKIT_HD_INLINE inline
#endif
