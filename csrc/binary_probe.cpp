// Probes for the popcount roofline of bench/binary_gemm.py (csrc/include/accelkit/binary.h): the core clock, and the
// VPOPCNTQ zmm rate of one thread and of several threads at once. The peak is measured rather than looked up
// because per-core tables do not say what a virtual CPU delivers: two vCPUs may be two hyperthreads of one core,
// or share a host with other work, and then two threads count bits no faster than one.
#include <algorithm>
#include <chrono>

#include "accelkit/binary.h"
#include "accelkit/cpu_features.h"

#if (defined(__x86_64__)) && (defined(__GNUC__) || defined(__clang__))
#define ACCELKIT_PROBE_X86 1
#else
#define ACCELKIT_PROBE_X86 0
#endif

namespace accelkit {
namespace binary {
namespace {

using probe_clock = std::chrono::steady_clock;

// Blocks of 120 instructions per timed run: 2.4 M VPOPCNTQ, milliseconds at any plausible rate, so the clock's
// resolution (about a microsecond) and the OpenMP fork do not enter the figure.
constexpr int kBlocks = 20000;
constexpr int kTrials = 5;
// The all-threads probe runs 2^20 blocks per thread, 126 M VPOPCNTQ, tens of milliseconds at one per cycle: as long
// as a GEMM call at the benchmark's default size, so on a shared host it sees the same share of the cores as the
// GEMM it is compared with, rather than a sub-millisecond burst that one time slice of another process can stall.
constexpr int kParallelBlocks = 1 << 20;
constexpr int kParallelTrials = 3;

#if ACCELKIT_PROBE_X86
// 12 independent chains: enough to cover a 2-4 cycle latency on 2-4 pipes; the register operand form keeps loads
// out of the measurement.
__attribute__((target("avx512f,avx512vpopcntdq"))) void vpopcntq_blocks(int blocks) {
  for (int b = 0; b < blocks; ++b)
    asm volatile(
        ".rept 10\n\t"
        "vpopcntq %%zmm0, %%zmm0\n\tvpopcntq %%zmm1, %%zmm1\n\tvpopcntq %%zmm2, %%zmm2\n\t"
        "vpopcntq %%zmm3, %%zmm3\n\tvpopcntq %%zmm4, %%zmm4\n\tvpopcntq %%zmm5, %%zmm5\n\t"
        "vpopcntq %%zmm6, %%zmm6\n\tvpopcntq %%zmm7, %%zmm7\n\tvpopcntq %%zmm8, %%zmm8\n\t"
        "vpopcntq %%zmm9, %%zmm9\n\tvpopcntq %%zmm10, %%zmm10\n\tvpopcntq %%zmm11, %%zmm11\n\t"
        ".endr" ::
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
}
#endif

double seconds_since(probe_clock::time_point t0) {
  return std::chrono::duration<double>(probe_clock::now() - t0).count();
}

}  // namespace

double measure_clock_hz() {
#if ACCELKIT_PROBE_X86
  // 1000 dependent register adds per block, 1 cycle each. Register (not immediate) operands, because some cores
  // fold chains of add-immediate at rename and would retire them faster than one per cycle.
  double best = 0.0;
  for (int trial = 0; trial < kTrials; ++trial) {
    uint64_t x = 0, one = 1;
    const auto t0 = probe_clock::now();
    for (int b = 0; b < kBlocks; ++b) asm volatile(".rept 1000\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
    best = std::max(best, 1000.0 * kBlocks / seconds_since(t0));
  }
  return best;
#else
  return 0.0;
#endif
}

double measure_vpopcntq_per_second() {
#if ACCELKIT_PROBE_X86
  if (!isa_supported(Isa::avx512)) return 0.0;
  double best = 0.0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const auto t0 = probe_clock::now();
    vpopcntq_blocks(kBlocks);
    best = std::max(best, 120.0 * kBlocks / seconds_since(t0));
  }
  return best;
#else
  return 0.0;
#endif
}

// Every thread runs the same burst after a barrier; the aggregate is all their instructions over the span from
// the first start to the last finish, so a thread that waits for a shared core (or a busy host) lowers it.
double measure_vpopcntq_per_second_parallel(int threads) {
#if ACCELKIT_PROBE_X86
  if (!isa_supported(Isa::avx512)) return 0.0;
  threads = std::max(1, threads);
#ifndef _OPENMP
  if (threads > 1) return 0.0;
#endif
  double best = 0.0;
  for (int trial = 0; trial < kParallelTrials; ++trial) {
    const auto origin = probe_clock::now();
    double first_start = 1e300, last_end = 0.0;
    int ran = 0;
#pragma omp parallel num_threads(threads) reduction(min : first_start) reduction(max : last_end) reduction(+ : ran)
    {
#pragma omp barrier
      first_start = std::chrono::duration<double>(probe_clock::now() - origin).count();
      vpopcntq_blocks(kParallelBlocks);
      last_end = std::chrono::duration<double>(probe_clock::now() - origin).count();
      ran = 1;
    }
    // The runtime may grant fewer threads than asked (OMP_THREAD_LIMIT, nesting): count those that ran.
    if (ran == threads) best = std::max(best, 120.0 * kParallelBlocks * ran / (last_end - first_start));
  }
  return best;
#else
  (void)threads;
  return 0.0;
#endif
}

}  // namespace binary
}  // namespace accelkit
