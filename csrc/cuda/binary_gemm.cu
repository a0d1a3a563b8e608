// CUDA C kernels for binary layers: sign packing and the XNOR / AND-popcount GEMMs. CuPy loads them by their
// extern "C" names (kernels/binary/cuda.py); the bit math comes from accelkit/binary.h, shared with the CPU kernels.
//
// Layout as on the CPU: a packed row is a string of 32-bit units (a 64-bit word is two units, low half first), so
// 32- and 64-bit words share the kernels; row r of an operand starts at unit r * units.
#include "accelkit/binary.h"

namespace {

using accelkit::binary::popcount32;
using accelkit::binary::sign_bit;
using accelkit::binary::unit_mask;

// GEMM tile: 64 x 64 outputs per block of 16 x 16 threads, each thread a 4 x 4 register tile at rows ty + 16 i and
// columns tx + 16 j. A K step stages 32 units (1024 bits) of 64 rows of each operand in shared memory: 2 x 64 x 33
// x 4 B = 16.5 KiB per block. The +1 column makes the 16 threads of a half-warp that read Ws[tx + 16 j][kk] hit
// banks (tx * 33 + kk) mod 32, all distinct; the As reads are broadcasts (one row per ty).
constexpr int kTile = 64;
constexpr int kStep = 32;
constexpr int kThreadsSide = 16;
constexpr int kPerThread = kTile / kThreadsSide;

template <typename T>
__device__ void pack_rows(const T* x, long long rows, long long k, long long row_stride, long long col_stride,
                          unsigned int* out, long long units) {
  // One warp per 32-bit unit: lane b reads element 32 u + b (coalesced when col_stride is 1) and the warp's ballot
  // is the unit, bit b from lane b. Elements past k, including the padding unit of an odd 64-bit word, give 0.
  const int lane = threadIdx.x % 32;
  const long long warps = static_cast<long long>(gridDim.x) * (blockDim.x / 32);
  const long long total = rows * units;
  for (long long t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; t < total; t += warps) {
    const long long r = t / units, c = (t % units) * 32 + lane;
    const unsigned int bit = c < k ? sign_bit(x[r * row_stride + c * col_stride]) : 0u;
    const unsigned int word = __ballot_sync(0xFFFFFFFFu, bit != 0u);
    if (lane == 0) out[t] = word;
  }
}

// kXor: out = k - 2 popcount(a xor w). Otherwise the spike form: out = popcount(a) - 2 popcount(a and w).
template <bool kXor>
__device__ void gemm_tile(const unsigned int* a, const unsigned int* w, int* out, int m, int n, long long units,
                          int k) {
  __shared__ unsigned int as[kTile][kStep + 1];
  __shared__ unsigned int ws[kTile][kStep + 1];
  const int tx = threadIdx.x % kThreadsSide, ty = threadIdx.x / kThreadsSide;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  // Loading: lane = unit within the step, warp = row (8 warps, 8 passes): each warp reads 128 contiguous bytes.
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int acc[kPerThread][kPerThread] = {};
  int fired[kPerThread] = {};
  for (long long u0 = 0; u0 < units; u0 += kStep) {
    const long long u = u0 + lane;
    // Padding bits past k are cleared in both operands, so whatever they hold they xor to 0 and every result stays
    // in [-k, k]. The spike form has no k: its padding is the caller's to keep 0.
    const unsigned int keep = kXor ? unit_mask(u, k) : 0xFFFFFFFFu;
    for (int r = warp; r < kTile; r += 8) {
      // Units past the row end or rows past the matrix load 0, which adds nothing to any popcount below.
      const int ra = row0 + r, rw = col0 + r;
      as[r][lane] = ra < m && u < units ? a[static_cast<long long>(ra) * units + u] & keep : 0u;
      ws[r][lane] = rw < n && u < units ? w[static_cast<long long>(rw) * units + u] & keep : 0u;
    }
    __syncthreads();
#pragma unroll 4
    for (int kk = 0; kk < kStep; ++kk) {
      unsigned int x[kPerThread], y[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) x[i] = as[ty + kThreadsSide * i][kk];
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) y[j] = ws[tx + kThreadsSide * j][kk];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) {
        if (!kXor) fired[i] += popcount32(x[i]);
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[i][j] += popcount32(kXor ? x[i] ^ y[j] : x[i] & y[j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int row = row0 + ty + kThreadsSide * i;
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int col = col0 + tx + kThreadsSide * j;
      if (col < n) out[static_cast<long long>(row) * n + col] = (kXor ? k : fired[i]) - 2 * acc[i][j];
    }
  }
}

}  // namespace

// Launch: any 1-D grid, blockDim.x a multiple of 32. out: rows x units 32-bit units.
extern "C" __global__ void accelkit_binary_pack_f32(const float* x, long long rows, long long k, long long row_stride,
                                                    long long col_stride, unsigned int* out, long long units) {
  pack_rows(x, rows, k, row_stride, col_stride, out, units);
}

extern "C" __global__ void accelkit_binary_pack_f64(const double* x, long long rows, long long k,
                                                    long long row_stride, long long col_stride, unsigned int* out,
                                                    long long units) {
  pack_rows(x, rows, k, row_stride, col_stride, out, units);
}

// Launch: grid (ceil(n / 64), ceil(m / 64)), block 256. a [m, units], w [n, units], out int32 [m, n].
extern "C" __global__ void __launch_bounds__(256) accelkit_binary_gemm(const unsigned int* a, const unsigned int* w,
                                                                       int* out, int m, int n, long long units,
                                                                       int k) {
  gemm_tile<true>(a, w, out, m, n, units, k);
}

extern "C" __global__ void __launch_bounds__(256) accelkit_spike_gemm(const unsigned int* s, const unsigned int* w,
                                                                      int* out, int m, int n, long long units) {
  gemm_tile<false>(s, w, out, m, n, units, 0);
}
