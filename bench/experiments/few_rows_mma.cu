// The epilogue's float64 GEMM for few rows and a wide W.sum on the tensor cores, W.sum's slice staged whole (r23:
// 15 x 686 -> 3860, where cuBLAS's DGEMM took about 11 us in the forward and few_rows_gemm.cu's SIMT kernel no less,
// its 15 rows' FMAs a load holding it to cuBLAS's speed; docs/limits.md section 75). Standalone, no torch (the
// toolkit has cuBLAS):
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -Ibench/experiments bench/experiments/few_rows_mma.cu \
//       -L/usr/local/cuda/lib64 -lcublas -o /tmp/few_rows_mma && /tmp/few_rows_mma
//
// slice_mma: block (j, s) takes columns [j x kCols, (j + 1) x kCols) over channels [s x chunk, (s + 1) x chunk): its
// W.sum slice (chunk x kCols) and its rows' sums (16 a pass) go to shared memory by asynchronous copies, all in
// flight at once (no step waits on the one before), then 4 warps of kCols / 4 columns run the m16n8k8 float64
// instruction over them (two m8n8k4 on sm_80 to sm_89), and the block writes its raw logits to partial [splits, B,
// N]; add_splits adds the splits in order (bias_lse's order in fusedlse), timed with it as "+add". Against
// cublasDgemm writing [B, N]. in_place: r43's GEMM reading its sums where they lie in x (one-element planes 48 bytes
// apart). Timing: CUDA events around the launches alone, the L2 flushed before each rep by a 256 MiB memset (dirty
// lines, as do_bench's flush) or by reading 256 MiB (clean lines, as after the forward's read of x);
// read_bench.cuh's median of 30.
//
// Run on the H200 on 2026-12-04 (us; best configuration of a shape; docs/limits.md section 75):
//   r23   [15, 686] x [686, 3860]   memset flush: cuBLAS 14.98, slice_mma 13.86 (1.08x; with the splits' add 18.1)
//                                   read flush:   cuBLAS 10.85-11.07, slice_mma 10.27 (1.04-1.08x; +add 13.7)
//   32 rows of r23                  read flush:   cuBLAS 13.06, slice_mma 14.72
//   k2048 [8, 2048] x [2048, 4096]  read flush:   cuBLAS 23.20, slice_mma 24.16
//   r43 in place [2328, 657] -> 61  memset flush: slice_mma 37.2 at best, where the forward's reader alone takes 24.3
// cuBLAS's 15-row DGEMM is about 5.5 us plus W.sum at 3.8 TB/s (r23 and k2048, read flush), and a kernel with every
// load of its slice in flight at once does no better: no lead for r23's GEMM, nor for r43's read and GEMM in one.
#include <cublas_v2.h>

#include <cmath>

#include "gemm_bench.cuh"  // random_values, device_copy, add_splits, relative_error, gemm_truth, free_device
#include "read_bench.cuh"  // CHECK, median_ms, device_and_flush

constexpr int kRowsPerPass = 16;
constexpr int kWarps = 4;
constexpr int kRowPitch = kRowsPerPass + 4;  // [channel][row]: 4 doubles of padding, as the fusedlse tile's

__device__ __forceinline__ void copy_async8(double* to, const double* from, bool valid) {
  const unsigned to_shared = static_cast<unsigned>(__cvta_generic_to_shared(to));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;" ::"r"(to_shared), "l"(from), "r"(valid ? 8 : 0));
}
__device__ __forceinline__ void copy_async16(double* to, const double* from, bool valid) {
  const unsigned to_shared = static_cast<unsigned>(__cvta_generic_to_shared(to));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(to_shared), "l"(from), "r"(valid ? 16 : 0));
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr int kMmaK = 8;
#else
constexpr int kMmaK = 4;
#endif

// c_g (row g, columns 2t, 2t + 1) and c_g8 (row g + 8) += A B over kMmaK channels.
__device__ __forceinline__ void mma16x8(double (&c_g)[2], double (&c_g8)[2], const double (&a)[kMmaK / 2],
                                        const double (&b)[kMmaK / 4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+d"(c_g[0]), "+d"(c_g[1]), "+d"(c_g8[0]), "+d"(c_g8[1])
      : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(b[0]), "d"(b[1]));
#else
  asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
      : "+d"(c_g[0]), "+d"(c_g[1])
      : "d"(a[0]), "d"(b[0]));
  asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
      : "+d"(c_g8[0]), "+d"(c_g8[1])
      : "d"(a[1]), "d"(b[0]));
#endif
}

// partial [splits, batch, n] (logits [batch, n] for one split); sums [batch, k]; wsum [k, n], n even. Dynamic shared
// memory: wsum's slice [chunk][kCols + 4], then the sums [chunk][kRowPitch] of every pass's rows, passes x that.
// Block (j, s, i) takes rows [i x kPasses x 16, ...) (kPasses passes of 16; 0: every row in one block). sums row r,
// channel c at r x row_stride + c x channel_stride (x's one-element planes where they lie, or contiguous sums).
template <int kCols, int kPasses = 0>
__global__ void __launch_bounds__(kWarps * 32) slice_mma(const double* __restrict__ sums,
                                                         const double* __restrict__ wsum, double* __restrict__ partial,
                                                         int batch, int k, int n, int chunk, int64_t row_stride,
                                                         int64_t channel_stride) {
  constexpr int kColPitch = kCols + 4;
  constexpr int kThreads = kWarps * 32, kWarpCols = kCols / kWarps, kTiles = kWarpCols / 8;
  static_assert(kTiles >= 1, "whole n8 tiles a warp");
  extern __shared__ __align__(16) double shared[];
  double* staged_w = shared;                          // [chunk][kColPitch]
  double* staged_sums = shared + chunk * kColPitch;   // [pass][chunk][kRowPitch]
  const int n0 = blockIdx.x * kCols, k0 = blockIdx.y * chunk, depth = min(chunk, k - k0);
  const int row0 = kPasses == 0 ? 0 : blockIdx.z * kPasses * kRowsPerPass;
  const int passes = kPasses == 0 ? (batch + kRowsPerPass - 1) / kRowsPerPass : kPasses;
  // W.sum's slice, 16 bytes a copy: zeros past N and past the slice's channels (chunk is a multiple of kMmaK)
  constexpr int kPairs = kCols / 2;
  if (n % 2 == 0) {
    for (int i = threadIdx.x; i < chunk * kPairs; i += kThreads) {
      const int c = i / kPairs, col = n0 + 2 * (i % kPairs);
      const bool valid = c < depth && col < n;
      copy_async16(staged_w + c * kColPitch + 2 * (i % kPairs), valid ? wsum + int64_t(k0 + c) * n + col : wsum,
                   valid);
    }
  } else {  // rows of W.sum not 16-byte aligned
    for (int i = threadIdx.x; i < chunk * kCols; i += kThreads) {
      const int c = i / kCols, col = n0 + i % kCols;
      const bool valid = c < depth && col < n;
      copy_async8(staged_w + c * kColPitch + i % kCols, valid ? wsum + int64_t(k0 + c) * n + col : wsum, valid);
    }
  }
  for (int i = threadIdx.x; i < passes * kRowsPerPass * chunk; i += kThreads) {
    const int r = i / chunk, c = i % chunk;  // neighbouring threads on neighbouring channels of a row
    const bool valid = c < depth && row0 + r < batch;
    copy_async8(staged_sums + (r / kRowsPerPass * chunk + c) * kRowPitch + r % kRowsPerPass,
                valid ? sums + int64_t(row0 + r) * row_stride + int64_t(k0 + c) * channel_stride : sums, valid);
  }
  asm volatile("cp.async.wait_all;" ::: "memory");
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int warp_col = warp * kWarpCols;
  for (int pass = 0; pass < passes; ++pass) {
    const double* pass_sums = staged_sums + pass * chunk * kRowPitch;
    double acc[kTiles][2][2] = {};
    for (int c = 0; c < chunk; c += kMmaK) {
      double a[kMmaK / 2];
#pragma unroll
      for (int i = 0; i < kMmaK / 2; ++i) a[i] = pass_sums[(c + t + 4 * (i / 2)) * kRowPitch + g + 8 * (i % 2)];
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        double b[kMmaK / 4];
#pragma unroll
        for (int i = 0; i < kMmaK / 4; ++i) b[i] = staged_w[(c + t + 4 * i) * kColPitch + warp_col + 8 * j + g];
        mma16x8(acc[j][0], acc[j][1], a, b);
      }
    }
    double* out = partial + int64_t(blockIdx.y) * batch * n;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row0 + pass * kRowsPerPass + g + 8 * half;
      if (row >= batch) continue;
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        const int col = n0 + warp_col + 8 * j + 2 * t;
        double* to = out + int64_t(row) * n + col;
        if (n % 2 == 0 && col < n) {
          *reinterpret_cast<double2*>(to) = make_double2(acc[j][half][0], acc[j][half][1]);
        } else {
          if (col < n) to[0] = acc[j][half][0];
          if (col + 1 < n) to[1] = acc[j][half][1];
        }
      }
    }
  }
}

// The L2 flushed by reading 256 MiB (clean lines, as after the forward's read of x) rather than by a memset, whose
// dirty lines the timed kernel would write back (about 7 us of a 15 us GEMM here).
__global__ void read_flush(const double2* __restrict__ buffer, int64_t count, double* sink) {
  double total = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const double2 v = __ldcs(buffer + i);
    total += v.x + v.y;
  }
  if (total == 12345.0) *sink = total;  // never true: the buffer is zeros
}
bool g_read_flush = false;
double* g_sink = nullptr;
void flush_l2(void* flush) {
  if (g_read_flush) {
    read_flush<<<132 * 8, 256>>>(static_cast<const double2*>(flush), (256 << 20) / 16, g_sink);
  } else {
    CHECK(cudaMemsetAsync(flush, 0, 256 << 20));
  }
}

template <int kCols, int kPasses = 0>
void try_slices(const double* s, const double* w, double* partial, double* logits, const std::vector<double>& truth,
                int b, int k, int n, int chunk, void* flush, double cublas_ms, int sms, int64_t row_stride = 0,
                int64_t channel_stride = 1) {
  if (row_stride == 0) row_stride = k;
  const int splits = (k + chunk - 1) / chunk;
  const int passes = kPasses == 0 ? (b + kRowsPerPass - 1) / kRowsPerPass : kPasses;
  const int row_tiles = kPasses == 0 ? 1 : (b + kPasses * kRowsPerPass - 1) / (kPasses * kRowsPerPass);
  const size_t shared = sizeof(double) * size_t(chunk) * ((kCols + 4) + passes * kRowPitch);
  if (shared > 200 * 1024) return;
  const auto kernel = slice_mma<kCols, kPasses>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
  int per_sm = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kWarps * 32, shared));
  const dim3 grid((n + kCols - 1) / kCols, splits, row_tiles);
  auto before = [&](int) { flush_l2(flush); };
  double* target = splits > 1 ? partial : logits;
  auto gemm = [&] {
    kernel<<<grid, kWarps * 32, shared>>>(s, w, target, b, k, n, chunk, row_stride, channel_stride);
  };
  const int64_t count = int64_t(b) * n;
  auto add = [&] { if (splits > 1) add_splits<double><<<sms * 4, 256>>>(partial, logits, count, splits); };
  const double gemm_ms = median_ms(before, gemm);
  const double both_ms = median_ms(before, [&] { gemm(); add(); });
  CHECK(cudaGetLastError());
  const double err = relative_error(logits, truth);
  std::printf("  cols %3d rows %3d chunk %4d splits %3d blocks %5d (%d a SM, %6.1f KiB): gemm %6.2f us (%5.0f GB/s of "
              "W.sum), +add %6.2f us; cuBLAS/gemm %.2f; err %.1e\n",
              kCols, passes * kRowsPerPass, chunk, splits, grid.x * grid.y * grid.z, per_sm, shared / 1024.0,
              gemm_ms * 1e3, double(k) * n * 8 / (gemm_ms * 1e6), both_ms * 1e3, cublas_ms / gemm_ms, err);
}

// r43's GEMM with its sums read where they lie: x's one-element planes 6 doubles apart ([B, C_in, 1, 6][..., :1]).
void in_place(const char* name, int b, int k, int n, void* flush, int sms) {
  constexpr int kApart = 6;
  const int64_t wn = int64_t(k) * n, cn = int64_t(b) * n;
  srand(2);
  const std::vector<double> hx = random_values<double>(int64_t(b) * k * kApart), hw = random_values<double>(wn);
  const std::vector<double> truth = gemm_truth(hx, int64_t(k) * kApart, kApart, hw, b, k, n);
  double *x = device_copy(hx), *w = device_copy(hw), *partial = device_buffer<double>(cn * 32);
  double* logits = device_buffer<double>(cn);
  std::printf("%s [%d, %d] (one-element planes %d doubles apart) x [%d, %d] float64, x read in place\n", name, b, k,
              kApart, k, n);
  for (int chunk : {64, 96, 128, 176, 232, 336}) {
    try_slices<64, 1>(x, w, partial, logits, truth, b, k, n, chunk, flush, 0, sms, int64_t(k) * kApart, kApart);
    try_slices<64, 2>(x, w, partial, logits, truth, b, k, n, chunk, flush, 0, sms, int64_t(k) * kApart, kApart);
    try_slices<64, 4>(x, w, partial, logits, truth, b, k, n, chunk, flush, 0, sms, int64_t(k) * kApart, kApart);
  }
  free_device(x, w, partial, logits);
}

void shape(const char* name, int b, int k, int n, void* flush, cublasHandle_t h, int sms) {
  const int64_t wn = int64_t(k) * n, cn = int64_t(b) * n;
  srand(1);
  const std::vector<double> hs = random_values<double>(int64_t(b) * k), hw = random_values<double>(wn);
  const std::vector<double> truth = gemm_truth(hs, k, 1, hw, b, k, n);
  double *s = device_copy(hs), *w = device_copy(hw), *partial = device_buffer<double>(cn * 128);
  double* logits = device_buffer<double>(cn);
  auto before = [&](int) { flush_l2(flush); };
  const double one = 1, zero = 0;  // row-major [b, n] = [b, k] x [k, n]: column-major c^T = w^T s^T
  const double cublas_ms = median_ms(before, [&] {
    cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, b, k, &one, w, n, s, k, &zero, logits, n);
  });
  std::printf("%s [%d, %d] x [%d, %d] float64: cuBLAS %.2f us (%.0f GB/s of W.sum)\n", name, b, k, k, n,
              cublas_ms * 1e3, double(wn) * 8 / (cublas_ms * 1e6));
  for (int chunk : {32, 48, 64, 96, 128, 176}) {
    try_slices<32>(s, w, partial, logits, truth, b, k, n, chunk, flush, cublas_ms, sms);
    try_slices<64>(s, w, partial, logits, truth, b, k, n, chunk, flush, cublas_ms, sms);
    try_slices<128>(s, w, partial, logits, truth, b, k, n, chunk, flush, cublas_ms, sms);
  }
  free_device(s, w, partial, logits);
}

int main() {
  void* flush;
  const int sms = device_and_flush(&flush);
  cublasHandle_t h;
  cublasCreate(&h);
  CHECK(cudaMalloc(&g_sink, sizeof(double)));
  CHECK(cudaMemset(flush, 0, 256 << 20));
  g_read_flush = false;
  std::printf("--- the L2 flushed by a 256 MiB memset\n");
  in_place("r43", 2328, 657, 61, flush, sms);
  for (bool read : {true, false}) {
    g_read_flush = read;
    std::printf("--- the L2 flushed by %s\n", read ? "reading 256 MiB" : "a 256 MiB memset");
    shape("r23", 15, 686, 3860, flush, h, sms);
    shape("r23_32rows", 32, 686, 3860, flush, h, sms);
    if (!read) break;
    shape("k2048", 8, 2048, 4096, flush, h, sms);
  }
  cublasDestroy(h);
  return 0;
}
