// The epilogue's GEMM for few rows and wide C_out (docs/limits.md section 73's lead for r23: 15 x 686 -> 3860 in
// float64, where cuBLAS's GEMM took about 11 us in the forward to read a 21 MB W.sum): logits [B, N] = sums [B, K] x
// W.sum [K, N], W.sum read once by every multiprocessor. Standalone, no torch (on the H200 the toolkit has cuBLAS):
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/few_rows_gemm.cu -L/usr/local/cuda/lib64 -lcublas \
//       -o /tmp/few_rows_gemm && /tmp/few_rows_gemm
//
// columns_gemm: block (j, s) of T threads takes T vectors of W.sum's columns (V, 8 or 16 bytes a thread) over the
// channels [s x chunk, (s + 1) x chunk); a thread keeps every row's logits of its columns in registers (16 rows a
// pass), each W.sum vector it loads serving all of them, U loads in flight (kPipe: the next step's loads issued
// before this step's FMAs); the block's rows' sums over its channels are staged in shared memory and read as
// broadcasts. Split-K partials [splits, B, N] go to memory (bias_lse adds splits in order in fusedlse; here
// add_splits adds them, timed with the GEMM as "+add"). Against cublas{D,S}gemm writing [B, N]. Timing: CUDA events
// around the launches alone, the L2 flushed (a 256 MiB memset) before each rep; read_bench.cuh's median of 30.
//
// Run on the H200 on 2026-12-04 (best configuration of 24 a shape, us; cuBLAS's / this kernel's GEMM, no add):
//   r23   [15, 686] x [686, 3860] float64    cuBLAS 15.0, columns_gemm 14.9 (16-byte vectors, 256 threads, 16 splits,
//                                             pipelined; 1.4 TB/s of W.sum, as cuBLAS): no lead for r23
//   r51   [46, 39] x [39, 4956] float64      cuBLAS 7.2, 10.7
//   few8  [8, 1024] x [1024, 8192] float32   cuBLAS 29.0, 18.3 (1.58x)
//   few16 [16, 2048] x [2048, 4096] float32  cuBLAS 49.6, 19.6 (2.54x)
//   one   [1, 2048] x [2048, 8192] float32   cuBLAS 22.9 (2.9 TB/s), 28.5
// float32's few-row GEMMs are where it pays: fusedlse's forward takes cuBLAS's SGEMM there (its tiled and gemv
// epilogues are slower), docs/limits.md section 73. Its float64 FMAs on 15 rows hold it to cuBLAS's speed.
#include <cublas_v2.h>

#include <cmath>
#include <type_traits>

#include "gemm_bench.cuh"  // random_values, device_copy, add_splits, relative_error, gemm_truth, free_device
#include "read_bench.cuh"  // CHECK, median_ms, device_and_flush

constexpr int kMaxChunk = 256;  // channels a block stages at most

// partial [splits, batch, n] (or logits [batch, n] where splits is 1); sums [batch, k]; wsum [k, n], n a multiple of
// kV, the values of V. kPipe: the next step's loads are issued before this step's FMAs.
template <typename A, typename V, int kRows, int kLoads, bool kPipe>
__global__ void columns_gemm(const A* __restrict__ sums, const A* __restrict__ wsum, A* __restrict__ partial,
                             int batch, int k, int n, int chunk) {
  constexpr int kV = sizeof(V) / sizeof(A);
  __shared__ A staged[kRows * kMaxChunk];  // [rows of this pass][chunk]
  const int col = (blockIdx.x * blockDim.x + threadIdx.x) * kV;
  const int k0 = blockIdx.y * chunk, k1 = min(k, k0 + chunk);
  const int depth = k1 - k0;
  for (int r0 = 0; r0 < batch; r0 += kRows) {
    const int rows = min(kRows, batch - r0);
    __syncthreads();
    for (int i = threadIdx.x; i < rows * depth; i += blockDim.x) {
      staged[(i / depth) * kMaxChunk + i % depth] = sums[int64_t(r0 + i / depth) * k + k0 + i % depth];
    }
    __syncthreads();
    if (col >= n) continue;
    A acc[kRows][kV] = {};
    const V* w = reinterpret_cast<const V*>(wsum + int64_t(k0) * n + col);
    const int64_t step = n / kV;
    V cur[kLoads], next[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) cur[u] = u < depth ? __ldg(w + u * step) : V{};
    for (int c = 0; c < depth; c += kLoads) {
      if (kPipe) {
#pragma unroll
        for (int u = 0; u < kLoads; ++u) next[u] = c + kLoads + u < depth ? __ldg(w + (c + kLoads + u) * step) : V{};
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (c + u >= depth) break;
        const A* vals = reinterpret_cast<const A*>(&cur[u]);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const A s = staged[r * kMaxChunk + c + u];  // rows past `rows` read stale values: never stored
#pragma unroll
          for (int e = 0; e < kV; ++e) acc[r][e] = fma(s, vals[e], acc[r][e]);
        }
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (kPipe) cur[u] = next[u];
        else cur[u] = c + kLoads + u < depth ? __ldg(w + (c + kLoads + u) * step) : V{};
      }
    }
    A* out = partial + (int64_t(blockIdx.y) * batch + r0) * n + col;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r < rows) *reinterpret_cast<V*>(out + int64_t(r) * n) = *reinterpret_cast<const V*>(acc[r]);
    }
  }
}

template <typename A> void gemm_cublas(cublasHandle_t h, const A* s, const A* w, A* c, int b, int k, int n);
template <>
void gemm_cublas<double>(cublasHandle_t h, const double* s, const double* w, double* c, int b, int k, int n) {
  const double one = 1, zero = 0;  // row-major [b, n] = [b, k] x [k, n]: column-major c^T = w^T s^T
  cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, b, k, &one, w, n, s, k, &zero, c, n);
}
template <> void gemm_cublas<float>(cublasHandle_t h, const float* s, const float* w, float* c, int b, int k, int n) {
  const float one = 1, zero = 0;
  cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, b, k, &one, w, n, s, k, &zero, c, n);
}

template <typename A, typename V, int kRows, int kLoads, bool kPipe>
void try_columns(const A* s, const A* w, A* partial, A* logits, const std::vector<double>& truth, int b, int k, int n,
                 int threads, int splits, void* flush, double cublas_ms, int sms) {
  constexpr int kV = sizeof(V) / sizeof(A);
  const int chunk = std::min(kMaxChunk, (k + splits - 1) / splits);
  splits = (k + chunk - 1) / chunk;
  const dim3 grid((n / kV + threads - 1) / threads, splits);
  auto before = [&](int) { CHECK(cudaMemsetAsync(flush, 0, 256 << 20)); };
  auto gemm = [&] {
    columns_gemm<A, V, kRows, kLoads, kPipe><<<grid, threads>>>(s, w, splits > 1 ? partial : logits, b, k, n, chunk);
  };
  const int64_t count = int64_t(b) * n;
  auto add = [&] { if (splits > 1) add_splits<A><<<sms * 4, 256>>>(partial, logits, count, splits); };
  const double gemm_ms = median_ms(before, gemm);
  const double both_ms = median_ms(before, [&] { gemm(); add(); });
  CHECK(cudaGetLastError());
  const double err = relative_error(logits, truth);
  const double wsum_gbps = double(k) * n * sizeof(A) / (gemm_ms * 1e6);
  std::printf("  vector %2d B rows %2d loads %2d %s threads %3d splits %3d blocks %5d: gemm %7.2f us (%5.0f GB/s of "
              "W.sum), +add %7.2f us; cuBLAS/gemm %.2f; err %.1e\n",
              int(sizeof(V)), kRows, kLoads, kPipe ? "pipe" : "    ", threads, splits, grid.x * grid.y,
              gemm_ms * 1e3, wsum_gbps, both_ms * 1e3, cublas_ms / gemm_ms, err);
}

template <typename A> void shape(const char* name, int b, int k, int n, void* flush, cublasHandle_t h, int sms) {
  const int64_t wn = int64_t(k) * n, cn = int64_t(b) * n;
  srand(1);
  const std::vector<A> hs = random_values<A>(int64_t(b) * k), hw = random_values<A>(wn);
  const std::vector<double> truth = gemm_truth(hs, k, 1, hw, b, k, n);
  A *s = device_copy(hs), *w = device_copy(hw), *partial = device_buffer<A>(cn * 64), *logits = device_buffer<A>(cn);
  auto before = [&](int) { CHECK(cudaMemsetAsync(flush, 0, 256 << 20)); };
  const double cublas_ms = median_ms(before, [&] { gemm_cublas<A>(h, s, w, logits, b, k, n); });
  std::printf("%s [%d, %d] x [%d, %d] %s: cuBLAS %.2f us (%.0f GB/s of W.sum)\n", name, b, k, k, n,
              sizeof(A) == 8 ? "float64" : "float32", cublas_ms * 1e3, double(wn) * sizeof(A) / (cublas_ms * 1e6));
  using V16 = std::conditional_t<sizeof(A) == 8, double2, float4>;
  using V8 = std::conditional_t<sizeof(A) == 8, double, float2>;
  for (int splits : {8, 16, 32}) {
    for (int threads : {128, 256}) {
      try_columns<A, V16, 16, 8, false>(s, w, partial, logits, truth, b, k, n, threads, splits, flush, cublas_ms, sms);
      try_columns<A, V16, 16, 8, true>(s, w, partial, logits, truth, b, k, n, threads, splits, flush, cublas_ms, sms);
      try_columns<A, V8, 16, 8, true>(s, w, partial, logits, truth, b, k, n, threads, splits, flush, cublas_ms, sms);
      try_columns<A, V8, 16, 16, true>(s, w, partial, logits, truth, b, k, n, threads, splits, flush, cublas_ms, sms);
    }
  }
  free_device(s, w, partial, logits);
}

int main() {
  void* flush;
  const int sms = device_and_flush(&flush);
  cublasHandle_t h;
  cublasCreate(&h);
  shape<double>("r23", 15, 686, 3860, flush, h, sms);
  shape<double>("r51", 46, 39, 4956, flush, h, sms);
  shape<float>("few8", 8, 1024, 8192, flush, h, sms);
  shape<float>("few16", 16, 2048, 4096, flush, h, sms);
  shape<float>("one", 1, 2048, 8192, flush, h, sms);
  cublasDestroy(h);
  return 0;
}
