// padding's tap sums of 16-bit x by one GEMM (ops_cuda.cpp keep_gemm_tap_sums, kernels.h KeepGemmArgs): the 0/1 keep
// matrix cuBLAS multiplies x's planes by, and the pass after it that sums again, by adds alone, each plane whose tap
// sums hold a value that is not finite. Without it an infinity in a cropped border would be a NaN (infinity x 0) in
// every tap that crops it; with it, it reaches only the taps that keep it, as in the tap kernels (taps.cu).
#pragma once

#include "../kernels.h"
#include "dtype.cuh"

namespace fusedlse {

// keep[(i * W + j) * keep_pitch + t * kW + u]: 1 where tap (t, u) keeps element (i, j), else 0 (and 0 past the
// taps); a thread a value.
template <typename T> __device__ void keep_matrix(const KeepGemmArgs& a) {
  const int taps = a.kernel_h * a.kernel_w;
  const int64_t values = a.height * a.width * a.keep_pitch;
  T* keep = static_cast<T*>(a.keep);
  const int64_t step = int64_t{gridDim.x} * blockDim.x;
  for (int64_t v = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; v < values; v += step) {
    const int64_t element = v / a.keep_pitch;
    const int tap = static_cast<int>(v - element * a.keep_pitch);
    const int64_t i = element / a.width, j = element - i * a.width;
    const int t = tap / a.kernel_w, u = tap - t * a.kernel_w;
    const bool kept = tap < taps && i >= a.row_first[t] && i < a.row_end[t] && j >= a.col_first[u] &&
                      j < a.col_end[u];
    keep[v] = from_acc<T>(kept ? 1.0f : 0.0f);
  }
}

// A warp a plane, lane t on tap t's sum: planes whose sums are all finite keep the GEMM's (copied where gemm_sums is
// not sums); in the others each lane adds its tap's kept elements again, row by row, and writes that.
template <typename T> __device__ void keep_gemm_mend(const KeepGemmArgs& a) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int taps = a.kernel_h * a.kernel_w;
  const int64_t planes = a.batch * a.channels;
  const int64_t step = int64_t{gridDim.x} * (blockDim.x / 32);
  const bool copy = a.gemm_sums != a.sums;
  const T* x = static_cast<const T*>(a.x);
  for (int64_t plane = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32; plane < planes; plane += step) {
    float* sums = a.sums + plane * taps;
    const float gemm_sum = lane < taps ? a.gemm_sums[plane * a.keep_pitch + lane] : 0.0f;
    const bool finite = lane >= taps || isfinite(gemm_sum);
    if (__all_sync(0xffffffffu, finite)) {  // the warp's last shuffle of this plane
      if (copy && lane < taps) sums[lane] = gemm_sum;
      continue;
    }
    if (lane >= taps) continue;
    const int t = lane / a.kernel_w, u = lane - t * a.kernel_w;
    const int64_t b = plane / a.channels;
    const T* base = x + b * a.stride_b + (plane - b * a.channels) * a.stride_c;
    float total = 0.0f;
    for (int64_t i = a.row_first[t]; i < a.row_end[t]; ++i) {
      for (int64_t j = a.col_first[u]; j < a.col_end[u]; ++j) total += to_acc(base[i * a.stride_h + j]);
    }
    sums[lane] = total;
  }
}

}  // namespace fusedlse
