// The epilogue's GEMM + logsumexp (GemmLseArgs; the kernels' launch bounds and launchers are in ../gemm_lse.cu): the
// bodies of the tiled GEMM (gemm_lse_tiles), its float64 tensor-core form (mma_lse_tiles), the column runs' merge and
// the narrow epilogue, and their parts: a reduce-scatter across lanes, shared-memory runs, a depth step's staging of
// the rows' sums and W.sum, float64's tensor-core instruction and the tensor-core tile's own reader of x, the biases'
// staging.
#pragma once

#include "../launch.cuh"
#include "load.cuh"
#include "reduce.cuh"

#include <cuda_pipeline_primitives.h>

namespace fusedlse {
namespace {

// One level of a reduce-scatter across lanes and the levels after it, down to kKept values: v[0, 2 kHalf) becomes
// v[0, kHalf), each lane keeping the half its bit kOffset picks and adding its partner's copy of that half. A
// template per level, so that every index is a constant and v stays in registers (a loop over the levels left v in
// local memory).
template <int kHalf, int kOffset, int kKept, typename A, int N>
__device__ __forceinline__ void halve_across_lanes(A (&v)[N], int lane) {
  if constexpr (kHalf >= kKept && kOffset >= 1) {
    const bool upper = (lane & kOffset) != 0;
#pragma unroll
    for (int k = 0; k < kHalf; ++k) {
      const A keep = upper ? v[k + kHalf] : v[k], send = upper ? v[k] : v[k + kHalf];
      v[k] = keep + __shfl_xor_sync(0xffffffffu, send, kOffset);
    }
    halve_across_lanes<kHalf / 2, kOffset / 2, kKept>(v, lane);
  }
}

// N consecutive values of shared memory, 16 bytes at a time where N and the type allow (the callers' offsets keep
// them 16-byte aligned).
template <typename A, int N>
__device__ __forceinline__ void load_run(const A* from, A* to) {
  if constexpr (sizeof(A) == 4 && N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(from)[i];
      to[4 * i] = v.x, to[4 * i + 1] = v.y, to[4 * i + 2] = v.z, to[4 * i + 3] = v.w;
    }
  } else if constexpr (sizeof(A) == 8 && N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const double2 v = reinterpret_cast<const double2*>(from)[i];
      to[2 * i] = v.x, to[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) to[i] = from[i];
  }
}

// One depth step's inputs for a tile of kRows rows and kCols columns, through registers into shared memory: the
// rows' sums, kRows x kDepth of them, transposed ([channel][row], rows kRowPitch apart), and kDepth channels of W.sum
// ([channel][column], kColPitch apart). fetch() loads this thread's share into registers (zeros past B, C_in and
// C_out) while the block works on the other buffer; stage() stores it. Each load is its lane's base pointer moved
// by a fixed stride, so that no load needs its own 64-bit index. The loads of gemm_lse_kernel's fetch and stage;
// that kernel keeps them inline: with this struct instead its tile-2 half kernel ran r58's forward 4.6% slower (H200,
// 160.4 against 153.4 us; ptxas scheduled its loop differently). kSumsInX: the sums are x where it lies, and save()
// writes a step's loaded sums to sums_out, as in gemm_lse_kernel.
template <typename A, int kRows, int kCols, int kDepth, int kRowPitch, int kColPitch, bool kSumsInX,
          bool kStageSums = true>
struct StepStager {
  static_assert(kGemmThreads % kDepth == 0 && kGemmThreads % kCols == 0, "loads keep their lane's channel");
  static_assert(kRows * kDepth % kGemmThreads == 0, "every thread loads the same number of sums");
  static constexpr int kSumLoads = kRows * kDepth / kGemmThreads;
  static constexpr int kWeightLoads = (kDepth * kCols + kGemmThreads - 1) / kGemmThreads;
  static constexpr int kSumRowsApart = kGemmThreads / kDepth;
  static constexpr int kWeightChannelsApart = kGemmThreads / kCols;

  const GemmLseArgs& args;  // the kernel's __grid_constant__ parameter: its fields are read where they are used
  const A* sum_base;        // this thread's first sum: row row0 + sum_row, channel sum_channel
  int64_t sum_stride;       // between this thread's rows
  int64_t rows_left;        // its loads with l * kSumRowsApart < rows_left are rows of B
  int sum_row, sum_channel, wsum_channel, wsum_col;
  bool wsum_lane;           // a lane with W.sum to load (all of them unless kDepth x kCols < kGemmThreads)
  A sum_next[kSumLoads], wsum_next[kWeightLoads];

  __device__ StepStager(const GemmLseArgs& a, int64_t row0) : args(a) {
    sum_row = threadIdx.x / kDepth;
    sum_channel = threadIdx.x % kDepth;
    wsum_channel = threadIdx.x / kCols;
    wsum_col = threadIdx.x % kCols;
    wsum_lane = kDepth * kCols >= kGemmThreads || threadIdx.x < kDepth * kCols;
    rows_left = a.batch - row0 - sum_row;
    if constexpr (kSumsInX) {
      sum_base = static_cast<const A*>(a.sums) + (row0 + sum_row) * a.x_batch_stride + sum_channel * a.x_channel_stride;
      sum_stride = kSumRowsApart * a.x_batch_stride;
    } else {
      sum_base = static_cast<const A*>(a.sums) + (row0 + sum_row) * a.channels + sum_channel;
      sum_stride = kSumRowsApart * a.channels;
    }
  }

  // Channels [k0, k0 + kDepth) of columns [n0, n0 + kCols).
  __device__ __forceinline__ void fetch(int64_t n0, int64_t k0) {
    if constexpr (kStageSums) {
      const bool channel_ok = k0 + sum_channel < args.channels;
      const A* from = kSumsInX ? sum_base + k0 * args.x_channel_stride : sum_base + k0;
#pragma unroll
      for (int l = 0; l < kSumLoads; ++l)
        sum_next[l] = channel_ok && l * kSumRowsApart < rows_left ? from[l * sum_stride] : A(0);
    }
    const bool col_ok = wsum_lane && n0 + wsum_col < args.c_out;
    const int64_t channels_left = args.channels - k0 - wsum_channel;
    const A* wfrom = static_cast<const A*>(args.weight_sum) + (k0 + wsum_channel) * args.c_out + n0 + wsum_col;
#pragma unroll
    for (int l = 0; l < kWeightLoads; ++l)
      wsum_next[l] = col_ok && l * kWeightChannelsApart < channels_left
                         ? wfrom[l * kWeightChannelsApart * args.c_out]
                         : A(0);
  }

  __device__ __forceinline__ void stage(A (&sums)[kDepth][kRowPitch], A (&weight)[kDepth][kColPitch]) const {
    if constexpr (kStageSums) {
#pragma unroll
      for (int l = 0; l < kSumLoads; ++l) sums[sum_channel][sum_row + l * kSumRowsApart] = sum_next[l];
    }
    if (wsum_lane) {
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l) weight[wsum_channel + l * kWeightChannelsApart][wsum_col] = wsum_next[l];
    }
  }

  // The sums fetched for channels [k0, k0 + kDepth) of the tile's rows from row0 into sums_out (kSumsInX).
  __device__ __forceinline__ void save(int64_t row0, int64_t k0) const {
    if (k0 + sum_channel >= args.channels) return;
    A* to = static_cast<A*>(args.sums_out) + (row0 + sum_row) * args.channels + k0 + sum_channel;
#pragma unroll
    for (int l = 0; l < kSumLoads; ++l) {
      if (l * kSumRowsApart < rows_left) to[l * kSumRowsApart * args.channels] = sum_next[l];
    }
  }
};

// Channels a tensor-core instruction takes: sm_90's m16n8k8 for float64, or on sm_89 (which has only sm_80's
// m8n8k4) two m8n8k4 for rows g and g + 8 of 16. H200, r27's GEMM (180286 x 25 -> 413) under Nsight Compute: on
// m8n8k4 the float64 and tensor pipe was 60% busy, mostly on its tensor side; on m16n8k8 the epilogue alone went
// 455 -> 408 us and the pipe's float64 side (the logsumexp's exps) leads. m16n8k4 measured the same (412 us).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr int kMmaChannels = 8;
#else
constexpr int kMmaChannels = 4;
#endif

// rows_g (row g, columns 2t and 2t + 1 of an 8-column tile) and rows_g8 (row g + 8) += A B, the PTX fragments of
// lane (g, t) = (lane / 4, lane % 4) (mma_lse_tiles below): a[i] is row g + 8 (i % 2) at channel
// t + 4 (i / 2), b[i] channel t + 4 i at column g.
__device__ __forceinline__ void mma_16x8(double (&rows_g)[2], double (&rows_g8)[2],
                                         const double (&a)[kMmaChannels / 2], const double (&b)[kMmaChannels / 4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+d"(rows_g[0]), "+d"(rows_g[1]), "+d"(rows_g8[0]), "+d"(rows_g8[1])
      : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(b[0]), "d"(b[1]));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
      : "+d"(rows_g[0]), "+d"(rows_g[1])
      : "d"(a[0]), "d"(b[0]));
  asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};"
      : "+d"(rows_g8[0]), "+d"(rows_g8[1])
      : "d"(a[1]), "d"(b[0]));
#else
  __trap();  // the builds target sm_89 and sm_90
#endif
}

// The tensor-core tile's own reader (GemmLseArgs::plane_width > 0): rows [row0, row0 + kRows) of x's planes summed
// into block_sums [kTilePlanesMaxChannels][kRowPitch], zeros past C_in and B (their W.sum is staged as zeros, but 0
// times a stale NaN is not 0). Half a warp a plane: lane l adds elements l and l + 16 of each of the plane's rows,
// kPlanesInFlight planes at a time, and the half warp adds its lanes by a fixed tree, so the sums are the same every
// run. A batch row's planes are taken channel by channel, so neighbouring half warps read neighbouring planes.
template <int kRows, int kRowPitch>
__device__ __forceinline__ void sum_tile_planes(const GemmLseArgs& a, int64_t row0, double (*block_sums)[kRowPitch]) {
  constexpr int kPlanesInFlight = 4, kHalfWarps = kGemmThreads / 16;
  static_assert(kTilePlanesMaxWidth <= 32, "two elements of a row a lane");
  const int channels = static_cast<int>(a.channels);
  for (int i = threadIdx.x; i < (kTilePlanesMaxChannels - channels) * kRows; i += kGemmThreads) {
    block_sums[channels + i / kRows][i % kRows] = 0.0;
  }
  const double* x = static_cast<const double*>(a.sums);
  const int half_warp = threadIdx.x / 16, half_lane = threadIdx.x % 16;
  const bool first_ok = half_lane < a.plane_width, second_ok = half_lane + 16 < a.plane_width;
  const int planes = kRows * channels;
  // Both halves of a warp take the same trips: group_sum's shuffles name all 32 lanes.
  for (int p_base = 0; p_base < planes; p_base += kHalfWarps * kPlanesInFlight) {
    const double* row_start[kPlanesInFlight];  // element half_lane of the plane's first row
    bool plane_ok[kPlanesInFlight];
    double total[kPlanesInFlight];
#pragma unroll
    for (int u = 0; u < kPlanesInFlight; ++u) {
      const int p = p_base + half_warp + u * kHalfWarps;
      const int r = p / channels, c = p - r * channels;
      plane_ok[u] = p < planes && row0 + r < a.batch;
      row_start[u] = x + (row0 + r) * a.x_batch_stride + c * a.x_channel_stride + half_lane;
      total[u] = 0.0;
    }
    for (int h = 0; h < a.plane_rows; ++h) {
      double first[kPlanesInFlight], second[kPlanesInFlight];
#pragma unroll
      for (int u = 0; u < kPlanesInFlight; ++u) {
        const double* row = row_start[u] + h * a.x_row_stride;
        first[u] = plane_ok[u] && first_ok ? __ldcs(row) : 0.0;
        second[u] = plane_ok[u] && second_ok ? __ldcs(row + 16) : 0.0;
      }
#pragma unroll
      for (int u = 0; u < kPlanesInFlight; ++u) total[u] += first[u] + second[u];
    }
#pragma unroll
    for (int u = 0; u < kPlanesInFlight; ++u) {
      const double sum = group_sum<double, 16>(total[u]);
      const int p = p_base + half_warp + u * kHalfWarps;
      if (half_lane == 0 && p < planes) {
        const int r = p / channels;
        block_sums[p - r * channels][r] = sum;
      }
    }
  }
  __syncthreads();
}

// sum_tile_planes' sums into sums_out [B, C_in], the forward's saved sums.
template <int kRows, int kRowPitch>
__device__ __forceinline__ void save_tile_planes(const GemmLseArgs& a, int64_t row0,
                                                 const double (*block_sums)[kRowPitch]) {
  const int channels = static_cast<int>(a.channels);
  double* out = static_cast<double*>(a.sums_out);
  for (int i = threadIdx.x; i < kRows * channels; i += kGemmThreads) {
    const int r = i / channels, c = i - r * channels;
    if (row0 + r < a.batch) out[(row0 + r) * channels + c] = block_sums[c][r];
  }
}

// staged[n] = column_bias of column n for n < `columns` (zeros past C_out), by a block of `threads` threads; the
// caller syncs before reading them.
template <typename T>
__device__ __forceinline__ void stage_bias_total(const GemmLseArgs& a, acc_t<T>* staged, int columns, int threads) {
  using A = acc_t<T>;
  const T* bias = static_cast<const T*>(a.bias);
  const T* conv_bias = static_cast<const T*>(a.conv_bias);
  for (int col = threadIdx.x; col < columns; col += threads) {
    staged[col] = col < a.c_out ? column_bias(bias, a.bias_stride, conv_bias, col) : A(0);
  }
}

// *to = *from by an asynchronous copy into shared memory (cp.async on sm_80 and later), or 0 where !valid (nothing
// is read then): a thread's copies are all in flight at once and hold no registers. The block waits for them with
// __pipeline_wait_prior(0), then a __syncthreads.
template <typename A> __device__ __forceinline__ void copy_async(A* to, const A* from, bool valid) {
  __pipeline_memcpy_async(to, from, sizeof(A), valid ? 0 : sizeof(A));
}

// s[d][i] = the sum of x's plane (row first + i, channel k0 + d x kLanes) for the rows below rows_here and channels
// below `channels`, else 0: GemmLseArgs' plane_elements elements at plane_offsets, the planes x_batch_stride and
// x_channel_stride apart. kNarrowPlaneElementsAtOnce elements of every plane at a time, all those loads in flight
// before their adds, so that the elements of a plane that share a sector are loaded together (tuning.h); added in
// the planes' element order, the same every run. 64-bit offsets: x may span more than 2^31 elements.
template <typename T, int kDepth, int kRows, int kLanes>
__device__ __forceinline__ void planes_in_x_sums(const GemmLseArgs& a, int64_t first, int rows_here, int k0,
                                                 int channels, acc_t<T> (&s)[kDepth][kRows]) {
  constexpr int kAtOnce = kNarrowPlaneElementsAtOnce;
  const T* x = static_cast<const T*>(a.sums);  // [B, C_in, plane_rows, plane_width], strided
  const T* planes = x + first * a.x_batch_stride + int64_t{k0} * a.x_channel_stride;
  bool valid[kDepth][kRows];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      valid[d][i] = i < rows_here && k0 + d * kLanes < channels;
      s[d][i] = acc_t<T>(0);
    }
  }
  for (int e0 = 0; e0 < a.plane_elements; e0 += kAtOnce) {
    T v[kAtOnce][kDepth][kRows];
#pragma unroll
    for (int u = 0; u < kAtOnce; ++u) {
      if (e0 + u >= a.plane_elements) break;
      const T* element = planes + a.plane_offsets[e0 + u];
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          if (valid[d][i])
            v[u][d][i] = __ldg(element + i * a.x_batch_stride + int64_t{d} * kLanes * a.x_channel_stride);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kAtOnce; ++u) {
      if (e0 + u >= a.plane_elements) break;
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
          if (valid[d][i]) s[d][i] += to_acc(v[u][d][i]);
        }
      }
    }
  }
}

// The narrow epilogue's values of its rows' channels first_channel + [k0, k0 + kLanes, ...), k0 below `channels` (the
// block's range), where x's planes are one element of 16-bit x (NarrowSource::kElementsInX), widened, else 0: row b's
// channel c at b * x_batch_stride + c * x_channel_stride; written as the sums' loads are (each widened where it
// lands), so that all kDepth x kRows loads are in flight before the first is used and no second copy of them takes
// registers. 64-bit offsets, as planes_in_x_sums'.
template <typename T, int kDepth, int kRows, int kLanes>
__device__ __forceinline__ void elements_in_x(const GemmLseArgs& a, int64_t first, int rows_here, int first_channel,
                                              int k0, int channels, acc_t<T> (&s)[kDepth][kRows]) {
  const T* x = static_cast<const T*>(a.sums);  // [B, C_in, 1, 1], strided
  const T* row_values = x + first * a.x_batch_stride + int64_t{first_channel + k0} * a.x_channel_stride;
#pragma unroll
  for (int d = 0; d < kDepth; ++d) {
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      s[d][i] = i < rows_here && k0 + d * kLanes < channels
                    ? to_acc(__ldg(row_values + i * a.x_batch_stride + int64_t{d} * kLanes * a.x_channel_stride))
                    : acc_t<T>(0);
    }
  }
}

// The narrow epilogue (plan::narrow_lse_applies and narrow_lse_tiling): a few columns (C_out <= kCols, at most
// kNarrowLseMaxColumns) and any number of channels. A group of kLanes lanes takes kRows rows at a time and splits
// their channels: lane l adds channels l, l + kLanes, ... of each row into all kCols logits of that row. The rows'
// sums come straight from global memory (a group's lanes read neighbouring values of a row); W.sum is staged once per
// block, transposed ([column][channel]: lanes of neighbouring channels read neighbouring words, and each word serves
// the group's kRows rows). The group's logits are then reduce-scattered over its lanes, and each row's logsumexp
// merged over the lanes that hold it. Where the tiled kernel pays for a tile of 8 columns or more per row, and
// cuBLAS's GEMM for one of 32 (plan.cpp, kCublasMinTile), this kernel pays for kCols, and its channels need no tile
// either. Split-K (k_splits > 1, where W.sum is too large for one block's shared memory: plan::narrow_lse_tiling):
// blocks (i, s) take channels [s x split_channels, (s + 1) x split_channels) and stage only that range of W.sum, and
// each row's raw logits over the range go to partial_logits; bias_lse adds the ranges in order, then the biases and
// the logsumexp. kSource (NarrowSource) kPlanesInX: no sums, the rows' channels are x's tiny planes where they lie
// (plan::Reader::kInEpilogue with the narrow epilogue, plan::narrow_reads_planes; one channel range): each lane sums
// its own planes (planes_in_x_sums) and, where sums_out is set, saves each sum there, once. kElementsInX: the same for
// planes of one element, loaded as the sums are (elements_in_x), over channel ranges too.
template <typename T, int kCols, int kLanes, NarrowSource kSource>
__device__ __forceinline__ void narrow_lse(const GemmLseArgs& a) {
  using A = acc_t<T>;
  constexpr bool kPlanesInX = kSource == NarrowSource::kPlanesInX;
  constexpr int kRows = narrow_lse_rows(kCols);
  // Summing planes: kNarrowPlaneElementsAtOnce loads a plane, the same loads in flight over fewer channels; half of
  // them for float64 or 8 columns and more, whose planes' sums and loads beside the logits spilled at two blocks of
  // 256 a multiprocessor (128 registers) with all of them.
  constexpr bool kHalfLoads = kPlanesInX && (sizeof(T) == 8 || kCols >= 8);
  constexpr int kLoadsInFlight = kHalfLoads ? kNarrowLseLoads / 2 : kNarrowLseLoads;
  constexpr int kDepth =
      kPlanesInX ? std::max(1, kLoadsInFlight / kRows / kNarrowPlaneElementsAtOnce) : kNarrowLseLoads / kRows;
  constexpr int kWarpRows = 32 / kLanes * kRows;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int channels = static_cast<int>(a.channels), c_out = static_cast<int>(a.c_out);
  const bool split = a.k_splits > 1;
  // This block's channels: [first_channel, first_channel + range), all of them without split-K.
  const int first_channel = split ? static_cast<int>(blockIdx.y * a.split_channels) : 0;
  const int range = split ? std::min(static_cast<int>(a.split_channels), channels - first_channel) : channels;
  A* staged_wsum = reinterpret_cast<A*>(shared_bytes);  // [kCols][range]: zeros past C_out
  A* staged_bias = staged_wsum + kCols * range;          // [kCols]: bias + conv_bias
  // The biases are the caller's, ready before this grid starts (launch.cuh): staged while the reader ends.
  if (!split) stage_bias_total<T>(a, staged_bias, kCols, kNarrowLseThreads);
  wait_for_previous_grid();
  const A* wsum = static_cast<const A*>(a.weight_sum) + int64_t{first_channel} * c_out;  // [range, C_out] of W.sum
  // W.sum by asynchronous copies, read in its order, stored transposed: every copy of a thread in flight at once.
  for (int i = threadIdx.x; i < range * kCols; i += kNarrowLseThreads) {
    const int k = i / kCols, col = i % kCols;
    copy_async(staged_wsum + col * range + k, wsum + k * c_out + (col < c_out ? col : 0), col < c_out);
  }
  __pipeline_commit();
  __pipeline_wait_prior(0);
  __syncthreads();
  const A* sums = static_cast<const A*>(a.sums);  // [B, C_in] (kSums)
  A* sums_out = static_cast<A*>(a.sums_out);      // [B, C_in], or null (x's planes)
  const A scale = static_cast<A>(a.scale);
  const int lane = threadIdx.x % kLanes;
  const int64_t warp = (int64_t{blockIdx.x} * kNarrowLseThreads + threadIdx.x) / 32;
  const int64_t warps = int64_t{gridDim.x} * (kNarrowLseThreads / 32);
  // Every lane of a warp runs the same trips, so the shuffles see the whole warp.
  for (int64_t warp_first = warp * kWarpRows; warp_first < a.batch; warp_first += warps * kWarpRows) {
    const int64_t first = warp_first + (threadIdx.x % 32) / kLanes * kRows;  // the group's first row
    const int rows_here = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(kRows, a.batch - first)));
    // [rows_here, range] of sums, rows `channels` apart
    const A* row_sums = sums + (rows_here > 0 ? first : 0) * channels + first_channel;
    A logits[kRows][kCols] = {};
    // kDepth channels of each row per lane at a time, all loaded before any is used: kNarrowLseLoads loads in flight
    // per lane, which the sums' read needs to keep DRAM busy where warps are few (W.sum's shared memory leaves 2 or 3
    // blocks a multiprocessor).
    if (kSource == NarrowSource::kSums && kRows == 4 && rows_here == 1) {
      // One row (a batch of one, or a batch's last): every load in flight on its channels, kRows times fewer trips
      // (for kRows 2 the second path cost 20-40 registers).
      // One row of 1473 channels took 12 trips of 4 loads per lane (r47's epilogue 11.8 µs, docs/limits.md §23).
      for (int k0 = lane; k0 < range; k0 += kNarrowLseLoads * kLanes) {
        A s[kNarrowLseLoads];
        load_strided(row_sums, k0, kLanes, range, s);
#pragma unroll
        for (int d = 0; d < kNarrowLseLoads; ++d) {
          const int k = k0 + d * kLanes;
          if (k >= range) break;
#pragma unroll
          for (int j = 0; j < kCols; ++j) logits[0][j] = fma(s[d], staged_wsum[j * range + k], logits[0][j]);
        }
      }
    } else {
      for (int k0 = lane; k0 < range; k0 += kDepth * kLanes) {
        A s[kDepth][kRows];
        if constexpr (kSource != NarrowSource::kSums) {
          if constexpr (kPlanesInX) {
            planes_in_x_sums<T, kDepth, kRows, kLanes>(a, rows_here > 0 ? first : 0, rows_here, k0, range, s);
          } else {
            elements_in_x<T, kDepth, kRows, kLanes>(a, rows_here > 0 ? first : 0, rows_here, first_channel, k0,
                                                    range, s);
          }
          if (sums_out != nullptr) {
#pragma unroll
            for (int d = 0; d < kDepth; ++d) {
              const int k = k0 + d * kLanes;
#pragma unroll
              for (int i = 0; i < kRows; ++i)
                if (i < rows_here && k < range) sums_out[(first + i) * channels + first_channel + k] = s[d][i];
            }
          }
        } else {
#pragma unroll
          for (int d = 0; d < kDepth; ++d) {
            const int k = k0 + d * kLanes;
#pragma unroll
            for (int i = 0; i < kRows; ++i) s[d][i] = i < rows_here && k < range ? row_sums[i * channels + k] : A(0);
          }
        }
#pragma unroll
        for (int d = 0; d < kDepth; ++d) {
          const int k = k0 + d * kLanes;
          if (k >= range) break;
#pragma unroll
          for (int j = 0; j < kCols; ++j) {
            const A w = staged_wsum[j * range + k];
#pragma unroll
            for (int i = 0; i < kRows; ++i) logits[i][j] = fma(s[d][i], w, logits[i][j]);
          }
        }
      }
    }
    // Reduce-scatter the group's kRows x kCols logits (value u = i * kCols + j): at each level a lane keeps half of
    // its values and adds its partner's copy of that half, until each lane holds kKept of them summed over the group
    // (lanes l * kCopies ... hold values [l * kKept, (l + 1) * kKept)); a lane of fewer values than lanes ends with
    // plain sums. Where every lane added every value (a butterfly of kRows x kCols shuffles per level) and one lane
    // then took a row's logsumexp alone (kCols exps in a row), this takes kRows x kCols shuffles in all, and each
    // lane takes kKept exps. The same tree every run: reproducible, and copies of a value are equal.
    constexpr int kValues = kRows * kCols;
    constexpr int kKept = kValues >= kLanes ? kValues / kLanes : 1;
    constexpr int kCopies = kValues >= kLanes ? 1 : kLanes / kValues;
    A v[kValues];
#pragma unroll
    for (int u = 0; u < kValues; ++u) v[u] = logits[u / kCols][u % kCols];
    halve_across_lanes<kValues / 2, kLanes / 2, kKept>(v, lane);
#pragma unroll
    for (int offset = kCopies / 2; offset > 0; offset /= 2) v[0] += __shfl_xor_sync(0xffffffffu, v[0], offset);
    // This lane's values lie in one row (kKept divides kCols): its logsumexp state over them, merged over the row's
    // lanes. A value's extra copies add nothing. Columns past C_out become -inf, which adds nothing (their logits are
    // not always 0: an infinite sum times W.sum's padding of 0 is NaN).
    constexpr int kRowLanes = kCols / kKept * kCopies;
    const int first_value = lane / kCopies * kKept, row = first_value / kCols;
    if (split) {  // the range's raw logits, [k_splits, B, C_out]: bias_lse takes it from here
      A* partial = static_cast<A*>(a.partial_logits) + (int64_t{blockIdx.y} * a.batch + first + row) * c_out;
      if (lane % kCopies == 0 && row < rows_here) {
#pragma unroll
        for (int t = 0; t < kKept; ++t) {
          const int col = (first_value + t) % kCols;
          if (col < c_out) partial[col] = v[t];
        }
      }
      continue;  // the whole warp: split is the same for every lane
    }
    Lse<A> state{-INFINITY, A(0)};
    if (lane % kCopies == 0) {
      A w[kKept];
#pragma unroll
      for (int t = 0; t < kKept; ++t) {
        const int col = (first_value + t) % kCols;
        w[t] = col < c_out ? scale * v[t] + staged_bias[col] : -INFINITY;
      }
      lse_push_all(state, w);
    }
    state = group_lse<A, kRowLanes>(state);  // every lane of the warp takes part
    if (lane % kRowLanes == 0 && row < rows_here) static_cast<T*>(a.out)[first + row] = from_acc<T>(ten_lse(state));
  }
}

// Row `row`'s logsumexp state over this block's column run: out[row] where one run takes all of C_out, else the run's
// partial state (GemmLseArgs::partial_lse) for merge_column_runs.
template <typename T>
__device__ __forceinline__ void write_row_state(const GemmLseArgs& a, int64_t row, const Lse<acc_t<T>>& merged) {
  using A = acc_t<T>;
  if (a.column_runs == 1) {
    static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(merged));
  } else {
    A* partial = static_cast<A*>(a.partial_lse) + (blockIdx.y * a.batch + row) * 2;
    partial[0] = merged.max_value;
    partial[1] = merged.scaled_sum;
  }
}

// The end of a tensor-core tile's block of kRows rows from row0: once each of its kWarpsN column warps has put its
// rows' states into warp_states, a thread a row merges them in a fixed order (the same result every run).
template <typename T, int kWarpsN, int kRows>
__device__ __forceinline__ void write_block_rows(const GemmLseArgs& a,
                                                 const Lse<acc_t<T>> (&warp_states)[kWarpsN][kRows], int64_t row0) {
  __syncthreads();
  if (threadIdx.x >= kRows) return;
  const int64_t row = row0 + threadIdx.x;
  if (row >= a.batch) return;
  Lse<acc_t<T>> merged = warp_states[0][threadIdx.x];
#pragma unroll
  for (int w = 1; w < kWarpsN; ++w) merged = lse_merge(merged, warp_states[w][threadIdx.x]);
  write_row_state<T>(a, row, merged);
}

// Float accumulation keeps kGemmBlocksPerSm blocks per multiprocessor (128 registers); double accumulation gets
// one (255 registers): tuning.h, gemm_blocks_per_sm.
// kPartial: split-K's block (GemmLseArgs::k_splits), T its accumulation type: the raw logits of its column tile over
// its channel range into partial_logits, no biases, no logsumexp.
// kSumsInX: the sums are x's one-element planes where they lie (GemmLseArgs::sums_out); the blocks of the first
// column run save what they load on their first column tile, so every sum is written once.
template <typename T, int kTile, bool kPartial, bool kSumsInX>
__device__ __forceinline__ void gemm_lse_tiles(const GemmLseArgs& a) {
  using A = acc_t<T>;
  wait_for_previous_grid();
  constexpr GemmTileShape kShape = kGemmTiles[kTile];
  constexpr int kRows = kShape.rows, kCols = kShape.cols, kTm = kShape.thread_rows, kTn = kShape.thread_cols;
  constexpr int kColLanes = kCols / kTn;  // lanes sharing a row, neighbours in their warp
  static_assert((kRows / kTm) * kColLanes == kGemmThreads, "one thread per thread block of outputs");
  static_assert(kColLanes <= 32 && (kColLanes & (kColLanes - 1)) == 0, "a row's lanes merge by shuffles");
  // A thread's columns come in runs of kRun: runs of four are kCols * 4 / kTn apart, so that the lanes of a quarter
  // warp read neighbouring 16-byte pieces of shared memory (no bank conflicts).
  constexpr int kRun = kTn >= 4 ? 4 : kTn;
  constexpr int kRunStride = kCols * kRun / kTn;
  constexpr int kGemmDepth = gemm_depth(kTile, sizeof(A));
  // The sums are staged transposed ([channel][row]); 16 bytes of padding per channel spread the staging stores,
  // whose lanes walk the channels of a row, over every bank.
  constexpr int kRowPitch = kRows + 16 / static_cast<int>(sizeof(A));
  constexpr int kSumLoads = (kRows * kGemmDepth + kGemmThreads - 1) / kGemmThreads;
  constexpr int kWeightLoads = (kGemmDepth * kCols + kGemmThreads - 1) / kGemmThreads;
  __shared__ __align__(16) A staged_sums[2][kGemmDepth][kRowPitch];
  __shared__ __align__(16) A staged_wsum[2][kGemmDepth][kCols];

  const A* sums = static_cast<const A*>(a.sums);
  const A* wsum = static_cast<const A*>(a.weight_sum);
  const T* bias = static_cast<const T*>(a.bias);
  const T* conv_bias = static_cast<const T*>(a.conv_bias);
  const A scale = static_cast<A>(a.scale);
  const int col_lane = threadIdx.x % kColLanes, row_lane = threadIdx.x / kColLanes;
  const int64_t row0 = int64_t{blockIdx.x} * kRows;
  const int64_t col_tiles = (a.c_out + kCols - 1) / kCols;
  const int64_t tiles_per_run = (col_tiles + a.column_runs - 1) / a.column_runs;
  const int64_t first_tile = blockIdx.y * tiles_per_run;
  const int64_t end_tile = std::min(col_tiles, first_tile + tiles_per_run);
  // This block's channels: all of them, or its split's range (whole steps, so that a step's loads stop at C_in only
  // in the last range).
  const int64_t k_begin = kPartial ? int64_t{blockIdx.z} * a.split_channels : 0;
  const int64_t k_count = kPartial ? std::min(a.split_channels, a.channels - k_begin) : a.channels;
  const int64_t depth_steps = (k_count + kGemmDepth - 1) / kGemmDepth;

  // Each thread's loads of a step: sums (row r_l, channel sum_channel) with r_l = sum_row + l * kSumRowsApart, and
  // W.sum (channel wsum_channel + l * kWeightChannelsApart, column wsum_col): one base pointer each, moved by a
  // fixed stride, so that no load needs its own 64-bit index.
  static_assert(kGemmThreads % kGemmDepth == 0 && kGemmThreads % kCols == 0, "loads keep their lane's channel");
  static_assert(kRows * kGemmDepth % kGemmThreads == 0, "every thread loads the same number of sums");
  constexpr int kSumRowsApart = kGemmThreads / kGemmDepth;
  constexpr int kWeightChannelsApart = kGemmThreads / kCols;
  const int sum_row = threadIdx.x / kGemmDepth, sum_channel = threadIdx.x % kGemmDepth;
  const int wsum_channel = threadIdx.x / kCols, wsum_col = threadIdx.x % kCols;
  const bool wsum_lane = kGemmDepth * kCols >= kGemmThreads || threadIdx.x < kGemmDepth * kCols;
  const int64_t rows_left = a.batch - row0 - sum_row;  // loads with l * kSumRowsApart < rows_left are rows of B
  const int64_t row_pitch = kSumsInX ? a.x_batch_stride : a.channels;
  const A* sum_base = sums + (row0 + sum_row) * row_pitch + (kSumsInX ? sum_channel * a.x_channel_stride : sum_channel);
  const int64_t sum_stride = kSumRowsApart * row_pitch;

  A sum_next[kSumLoads], wsum_next[kWeightLoads];
  // Step k0's values into registers (zeros past B, C_in and C_out), then into buffer `buf`.
  const auto fetch = [&](int64_t n0, int64_t k0) {
    const bool channel_ok = k0 + sum_channel < a.channels;
    const A* from = kSumsInX ? sum_base + k0 * a.x_channel_stride : sum_base + k0;
#pragma unroll
    for (int l = 0; l < kSumLoads; ++l)
      sum_next[l] = channel_ok && l * kSumRowsApart < rows_left ? from[l * sum_stride] : A(0);
    const bool col_ok = wsum_lane && n0 + wsum_col < a.c_out;
    const int64_t channels_left = a.channels - k0 - wsum_channel;
    const A* wfrom = wsum + (k0 + wsum_channel) * a.c_out + n0 + wsum_col;
#pragma unroll
    for (int l = 0; l < kWeightLoads; ++l)
      wsum_next[l] = col_ok && l * kWeightChannelsApart < channels_left ? wfrom[l * kWeightChannelsApart * a.c_out]
                                                                        : A(0);
  };
  const auto stage = [&](int buf) {
#pragma unroll
    for (int l = 0; l < kSumLoads; ++l) staged_sums[buf][sum_channel][sum_row + l * kSumRowsApart] = sum_next[l];
    if (wsum_lane) {
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l)
        staged_wsum[buf][wsum_channel + l * kWeightChannelsApart][wsum_col] = wsum_next[l];
    }
  };
  // kSumsInX: step k0's sums, once loaded, into sums_out (by the blocks that save them, on their first tile).
  const bool saves_sums = kSumsInX && blockIdx.y == 0;
  const auto save = [&](int64_t k0) {
    if constexpr (kSumsInX) {
      if (k0 + sum_channel >= a.channels) return;
      A* to = static_cast<A*>(a.sums_out) + (row0 + sum_row) * a.channels + k0 + sum_channel;
#pragma unroll
      for (int l = 0; l < kSumLoads; ++l) {
        if (l * kSumRowsApart < rows_left) to[l * kSumRowsApart * a.channels] = sum_next[l];
      }
    }
  };

  Lse<A> state[kTm];
#pragma unroll
  for (int i = 0; i < kTm; ++i) state[i] = Lse<A>{-INFINITY, A(0)};

  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    const int64_t n0 = tile * kCols;
    A logits[kTm][kTn] = {};
    const bool save_tile = saves_sums && tile == first_tile;
    if (depth_steps > 0) {
      fetch(n0, k_begin);
      stage(0);
      if (save_tile) save(k_begin);
      __syncthreads();
    }
    for (int64_t step = 0; step < depth_steps; ++step) {
      const int buf = static_cast<int>(step & 1);
      const bool more = step + 1 < depth_steps;
      if (more) fetch(n0, k_begin + (step + 1) * kGemmDepth);
      // Channels past C_in are zeros: skipped, since a few channels (C_in of 1 to 8) are common.
      const int64_t valid = std::min<int64_t>(kGemmDepth, k_count - step * kGemmDepth);
#pragma unroll
      for (int k = 0; k < kGemmDepth; ++k) {
        if (k >= valid) break;
        A row_values[kTm], col_values[kTn];
        load_run<A, kTm>(&staged_sums[buf][k][row_lane * kTm], row_values);
#pragma unroll
        for (int run = 0; run < kTn / kRun; ++run)
          load_run<A, kRun>(&staged_wsum[buf][k][run * kRunStride + col_lane * kRun], col_values + run * kRun);
#pragma unroll
        for (int i = 0; i < kTm; ++i)
#pragma unroll
          for (int j = 0; j < kTn; ++j) logits[i][j] = fma(row_values[i], col_values[j], logits[i][j]);
      }
      if (more) {
        stage(buf ^ 1);
        if (save_tile) save(k_begin + (step + 1) * kGemmDepth);
      }
      // Every thread is done with `buf` (refilled two steps on, or by the next column tile's first step) and sees
      // the next buffer.
      __syncthreads();
    }
    if constexpr (kPartial) {
      A* partial = static_cast<A*>(a.partial_logits) + int64_t{blockIdx.z} * a.batch * a.c_out;
#pragma unroll
      for (int i = 0; i < kTm; ++i) {
        const int64_t row = row0 + row_lane * kTm + i;
#pragma unroll
        for (int j = 0; j < kTn; ++j) {
          const int64_t col = n0 + (j / kRun) * kRunStride + col_lane * kRun + j % kRun;
          if (row < a.batch && col < a.c_out) partial[row * a.c_out + col] = logits[i][j];
        }
      }
      return;  // one column tile per block
    }
    // The biases of this thread's columns (scale x logit + bias, then + conv_bias: the other epilogues, the
    // tensor-core tile's included, add column_bias's bias + conv_bias instead); columns past C_out become -inf,
    // which adds nothing.
    A col_bias[kTn], col_conv_bias[kTn];
    bool col_valid[kTn];
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = n0 + (j / kRun) * kRunStride + col_lane * kRun + j % kRun;
      col_valid[j] = col < a.c_out;
      col_bias[j] = col_valid[j] ? to_acc(bias[col * a.bias_stride]) : A(0);
      col_conv_bias[j] = col_valid[j] && conv_bias ? to_acc(conv_bias[col]) : A(0);  // v + 0 is v
    }
    // Columns past C_out become -inf (adding nothing), in the last column tile only.
    const bool last_tile = n0 + kCols > a.c_out;
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      A v[kTn];
#pragma unroll
      for (int j = 0; j < kTn; ++j) v[j] = scale * logits[i][j] + col_bias[j] + col_conv_bias[j];
      if (last_tile) {
#pragma unroll
        for (int j = 0; j < kTn; ++j) {
          if (!col_valid[j]) v[j] = -INFINITY;
        }
      }
      lse_push_all(state[i], v);
    }
  }

#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const Lse<A> merged = group_lse<A, kColLanes>(state[i]);
    const int64_t row = row0 + row_lane * kTm + i;
    if (col_lane != 0 || row >= a.batch) continue;
    write_row_state<T>(a, row, merged);
  }
}

// --- float64 on tensor cores (kGemmTiles[...].mma) ----------------------------------------------------------------
// The same GEMM + logsumexp as gemm_lse_tiles for double accumulation (mma_lse_kernel in ../gemm_lse.cu), its FMAs by
// the warp-wide float64 matrix instructions (mma.sync: m16n8k8 on sm_90, m8n8k4 on sm_80 and later; exact FMAs, as the
// SIMT kernel's). A block of kGemmThreads takes kRows = 32 rows and kCols columns per column tile, as 2 x 4 warps of 16
// rows x kCols / 4 columns (kCols / 32 n8 tiles). Lane (g, t) = (lane / 4, lane % 4) holds, per the PTX fragment
// layout, A's (the sums') rows g and g + 8 at channel t (and t + 4), B's (W.sum's) channel t (and t + 4) at column g
// and C's rows g and g + 8 at columns 2t and 2t + 1 of an 8-column tile: the thread's logits lie in rows g and g + 8 of
// its warp's rows.

// kPartial, kSumsInX: as gemm_lse_kernel's. kPlanes: the block sums its rows' planes of x itself (sum_tile_planes)
// into staged_sums, which then hold all of its channels, and runs its GEMM on them.
template <typename T, int kTile, bool kPartial, bool kSumsInX, bool kPlanes>
__device__ __forceinline__ void mma_lse_tiles(const GemmLseArgs& a) {
  using A = acc_t<T>;
  static_assert(sizeof(A) == 8, "float64 only");
  static_assert(!(kPlanes && (kPartial || kSumsInX)), "planes summed by whole-K row tiles");
  constexpr GemmTileShape kShape = kGemmTiles[kTile];
  constexpr int kRows = kShape.rows, kCols = kShape.cols;
  constexpr int kWarpsN = 4, kWarpRows = 16, kWarpCols = kCols / kWarpsN;
  static_assert(kShape.mma && kRows == 2 * kWarpRows && kGemmThreads == 8 * 32, "2 x 4 warps of 16 rows");
  constexpr int kTiles = kWarpCols / 8;  // n8 tiles per warp
  constexpr int kDepth = gemm_depth(kTile, sizeof(A));
  static_assert(kTiles >= 1 && kDepth % kMmaChannels == 0, "whole instructions");
  // 4 doubles of padding per channel: the lanes of a half warp read channels t at elements g (rows or columns),
  // 0-3 each, so with channels 4 doubles apart modulo the 16 banks of 8 bytes their loads hit every bank once.
  constexpr int kRowPitch = kRows + 4, kColPitch = kCols + 4;
  __shared__ __align__(16) A staged_sums[2][kDepth][kRowPitch];
  __shared__ __align__(16) A staged_wsum[2][kDepth][kColPitch];
  __shared__ A staged_bias[2][kCols];  // [column tile's parity][column]: bias + conv_bias
  __shared__ Lse<A> warp_states[kWarpsN][kRows];
  // gemm_blocks_per_sm's blocks on the smaller of the targets' multiprocessors.
  static_assert(gemm_blocks_per_sm(kTile, 8) * (sizeof(staged_sums) + sizeof(staged_wsum) + sizeof(staged_bias) +
                                                sizeof(warp_states) + kReservedSharedBytesPerBlock) <=
                    kSm89SharedBytesPerSm,
                "the blocks a multiprocessor that the launch bound promises fit on sm_89");
  static_assert(sizeof(staged_sums) + sizeof(staged_wsum) + sizeof(staged_bias) + sizeof(warp_states) ==
                    kMmaSharedBytes,
                "the planner's count of blocks a multiprocessor (mma_blocks_per_sm)");
  static_assert(!kPlanes || 2 * kDepth == kTilePlanesMaxChannels, "staged_sums' two buffers hold every channel");
  const int64_t row0 = int64_t{blockIdx.x} * kRows;
  // kPlanes: staged_sums as [channel][row], filled once; x is the caller's, so it is read before the wait for W.sum's
  // grid (launch.cuh), and the saved sums written after it (their memory may be a grid's before it).
  const auto plane_sums = reinterpret_cast<A(*)[kRowPitch]>(&staged_sums[0][0][0]);
  if constexpr (kPlanes) sum_tile_planes<kRows, kRowPitch>(a, row0, plane_sums);
  wait_for_previous_grid();
  if constexpr (kPlanes) {
    if (a.sums_out != nullptr && blockIdx.y == 0) save_tile_planes<kRows, kRowPitch>(a, row0, plane_sums);
  }

  const T* bias = static_cast<const T*>(a.bias);
  const T* conv_bias = static_cast<const T*>(a.conv_bias);
  const A scale = static_cast<A>(a.scale);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;
  const int warp_row = warp / kWarpsN * kWarpRows, warp_col = warp % kWarpsN * kWarpCols;
  const int64_t col_tiles = (a.c_out + kCols - 1) / kCols;
  const int64_t tiles_per_run = (col_tiles + a.column_runs - 1) / a.column_runs;
  const int64_t first_tile = blockIdx.y * tiles_per_run;
  const int64_t end_tile = std::min(col_tiles, first_tile + tiles_per_run);
  const int64_t k_begin = kPartial ? int64_t{blockIdx.z} * a.split_channels : 0;  // as in gemm_lse_kernel
  const int64_t k_count = kPartial ? std::min(a.split_channels, a.channels - k_begin) : a.channels;
  const int64_t depth_steps = (k_count + kDepth - 1) / kDepth;
  StepStager<A, kRows, kCols, kDepth, kRowPitch, kColPitch, kSumsInX, !kPlanes> stager(a, row0);
  // A column tile's biases, loaded with its first step by the threads of one column each and staged beside it, so
  // that the logsumexp finds them in shared memory rather than waiting on them after the tile's last step.
  const bool bias_lane = !kPartial && threadIdx.x < kCols;
  A bias_next = A(0);
  const auto fetch_bias = [&](int64_t n0) {
    const int64_t col = n0 + threadIdx.x;
    if (bias_lane && col < a.c_out) bias_next = column_bias(bias, a.bias_stride, conv_bias, col);
  };

  // The next tile's first step and biases are fetched during this tile's last step, so that they arrive while this
  // tile's logsumexp runs; not where x is read in place, whose registers that left 4 bytes short (spilled, sm_90),
  // nor in split-K's blocks, which take one tile each.
  constexpr bool kFetchAhead = !kSumsInX && !kPartial;

  Lse<A> state[2] = {Lse<A>{-INFINITY, A(0)}, Lse<A>{-INFINITY, A(0)}};  // rows g and g + 8 of the warp's
  bool tile_fetched = false;  // this tile's first step and biases are in flight since the previous tile's last step
  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    const int64_t n0 = tile * kCols;
    const int tile_parity = static_cast<int>((tile - first_tile) & 1);
    const bool save_tile = kSumsInX && blockIdx.y == 0 && tile == first_tile;  // as in gemm_lse_kernel
    const bool next_tile = tile + 1 < end_tile;
    A acc[2][kTiles][2] = {};  // [row g, g + 8][n8 tile][column 2t, 2t + 1]
    if (!tile_fetched) {
      stager.fetch(n0, k_begin);
      fetch_bias(n0);
    }
    stager.stage(staged_sums[0], staged_wsum[0]);
    if (bias_lane) staged_bias[tile_parity][threadIdx.x] = bias_next;
    if (save_tile) stager.save(row0, k_begin);
    __syncthreads();
    for (int64_t step = 0; step < depth_steps; ++step) {
      const int buf = static_cast<int>(step & 1);
      const int sums_buf = kPlanes ? static_cast<int>(step) : buf;  // kPlanes: step s's channels in buffer s
      const bool more = step + 1 < depth_steps;
      if (more) {
        stager.fetch(n0, k_begin + (step + 1) * kDepth);
      } else if (kFetchAhead && next_tile) {
        stager.fetch(n0 + kCols, k_begin);
        fetch_bias(n0 + kCols);
      }
      // Channels past C_in are staged as zeros; whole groups of them are skipped.
      const int64_t valid = std::min<int64_t>(kDepth, k_count - step * kDepth);
#pragma unroll
      for (int k = 0; k < kDepth; k += kMmaChannels) {
        if (k >= valid) break;
        A a_frag[kMmaChannels / 2];
#pragma unroll
        for (int i = 0; i < kMmaChannels / 2; ++i) {
          a_frag[i] = staged_sums[sums_buf][k + t + 4 * (i / 2)][warp_row + g + 8 * (i % 2)];
        }
#pragma unroll
        for (int n = 0; n < kTiles; ++n) {
          A b_frag[kMmaChannels / 4];
#pragma unroll
          for (int i = 0; i < kMmaChannels / 4; ++i) b_frag[i] = staged_wsum[buf][k + t + 4 * i][warp_col + 8 * n + g];
          mma_16x8(acc[0][n], acc[1][n], a_frag, b_frag);
        }
      }
      if (more) {
        stager.stage(staged_sums[buf ^ 1], staged_wsum[buf ^ 1]);
        if (save_tile) stager.save(row0, k_begin + (step + 1) * kDepth);
      }
      __syncthreads();  // as in gemm_lse_kernel
    }
    tile_fetched = kFetchAhead && depth_steps > 0 && next_tile;
    if constexpr (kPartial) {
      A* partial = static_cast<A*>(a.partial_logits) + int64_t{blockIdx.z} * a.batch * a.c_out;
#pragma unroll
      for (int slot = 0; slot < 2; ++slot) {
        const int64_t row = row0 + warp_row + 8 * slot + g;
#pragma unroll
        for (int j = 0; j < 2 * kTiles; ++j) {
          const int64_t col = n0 + warp_col + j / 2 * 8 + 2 * t + j % 2;
          if (row < a.batch && col < a.c_out) partial[row * a.c_out + col] = acc[slot][j / 2][j % 2];
        }
      }
      return;  // one column tile per block
    }
    // The biases of this thread's columns; columns past C_out become -inf.
    constexpr int kValues = 2 * kTiles;  // value j: n8 tile j / 2, column 2t + j % 2 of it
    A col_bias[kValues];
    bool col_valid[kValues];
#pragma unroll
    for (int j = 0; j < kValues; ++j) {
      const int col = warp_col + j / 2 * 8 + 2 * t + j % 2;
      col_valid[j] = n0 + col < a.c_out;
      col_bias[j] = staged_bias[tile_parity][col];
    }
#pragma unroll
    for (int slot = 0; slot < 2; ++slot) {
      A v[kValues];
#pragma unroll
      for (int j = 0; j < kValues; ++j) {
        v[j] = col_valid[j] ? scale * acc[slot][j / 2][j % 2] + col_bias[j] : A(-INFINITY);
      }
      lse_push_all(state[slot], v);
    }
  }
  // Each row's state: over the four lanes of its g, then over the kWarpsN warps of its rows in a fixed order (the
  // same result every run).
#pragma unroll
  for (int slot = 0; slot < 2; ++slot) {
    const Lse<A> merged = group_lse<A, 4>(state[slot]);
    if (t == 0) warp_states[warp % kWarpsN][warp_row + 8 * slot + g] = merged;
  }
  write_block_rows<T>(a, warp_states, row0);
}

// --- float16 and bfloat16 x on bfloat16 tensor cores (kBf16MmaTile) ---------------------------------------------
// The same GEMM + logsumexp for float accumulation (bf16_mma_lse_kernel in ../gemm_lse.cu, plan::bf16_tile_applies),
// its products by the warp-wide bfloat16 matrix instruction (mma.sync m16n8k16, float32 accumulation; sm_80 and later)
// over pieces of each float32 factor as cuBLAS's epilogue takes them (kernels.h, Bf16PiecesArgs): first x first + low
// x kept + kept x low, about 2^-16 of |sums| @ |W.sum| off. A block of kGemmThreads takes kRows = 128 rows, its 4 x 2
// warps 32 x 32 of each 64-column tile: two m16 fragments by four n8 tiles. Lane (g, t) = (lane / 4, lane % 4) holds,
// per the PTX fragment layout, A's rows g and g + 8 of a fragment at channels 2t, 2t + 1 and 2t + 8, 2t + 9 (a
// register a pair, the lower channel in its low half), B's channels 2t, 2t + 1 and 2t + 8, 2t + 9 at column g, and C's
// rows g and g + 8 at columns 2t and 2t + 1.
//
// Why it is laid out so (docs/limits.md section 107): a tile that staged both factors a step at a time (s82) waited
// on each step's loads and barrier, and took r09's GEMM at 0.98 of the SIMT tile's time. Here nothing is staged twice
// and nothing waits on a barrier after the start: the block cuts its rows' sums into pieces once, into shared memory
// in the order the fragments are loaded (bf16_mma_staged_bytes), and keeps them for every column tile of its run;
// W.sum is cut once per call by bf16_weight_fragments into fragment order in global memory, each lane's first and low
// pieces of a step one 16-byte load, which every block of a column run reads from the L1 and L2.

// Two neighbouring float32 values (v0 the lower channel) as bfloat16 pairs of their pieces (bf16_cut, dtype.cuh), v1's
// above v0's: their first pieces and their low ones.
struct Bf16PairCut {
  uint32_t first, low;
};
__device__ __forceinline__ uint32_t bf16_pair_bits(__nv_bfloat162 pair) {
  uint32_t bits;
  memcpy(&bits, &pair, sizeof(bits));
  return bits;
}
__device__ __forceinline__ Bf16PairCut bf16_pair_cut(float v0, float v1) {
  const Bf16Cut lower = bf16_cut(v0), upper = bf16_cut(v1);
  return {bf16_pair_bits(__halves2bfloat162(lower.first, upper.first)),
          bf16_pair_bits(__halves2bfloat162(lower.low, upper.low))};
}

// first with its halves that are not finite (exponent all ones) zeroed: the high pieces that meet the other factor's
// low ones, so that a value that is not finite meets the other factor's value once (first x first), as in a float32
// GEMM: no inf x 0 from a piece of zero. Four instructions; ptxas keeps them off the products' path.
__device__ __forceinline__ uint32_t bf16_pair_kept(uint32_t first) {
  // Bit 15 (31) of carried is set where the low (high) half's exponent is all ones; prmt's sign mode (selector
  // nibbles 9 and b: bytes 1 and 3, their top bits replicated) spreads it over its half.
  const uint32_t carried = (first & 0x7f807f80u) + 0x00800080u;
  uint32_t not_finite;
  asm("prmt.b32 %0, %1, 0, 0xbb99;" : "=r"(not_finite) : "r"(carried));
  return first & ~not_finite;
}

// c (rows g, g + 8 at columns 2t, 2t + 1) += a b, one m16n8k16 product of bfloat16 fragments into float32.
__device__ __forceinline__ void mma_bf16_16x8(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                              uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// W.sum [C_in, C_out] float32 in the bfloat16 tile's fragment order (GemmLseArgs::weight_fragments): for n8 tile j
// and step s of 16 channels, lane (g, t)'s {first, first, low, low} pairs (bf16_pair_cut) of channels 16 s + 2t, + 1
// and 16 s + 2t + 8, + 9 at column 8 j + g, zeros past C_in and C_out, for whole column tiles (bf16_mma_columns); a
// thread a lane's 16 bytes. Its first threads also write column_biases[n] = bias + conv_bias of column n (zero past
// C_out), which the tile loads two columns at a time.
template <typename T> __device__ __forceinline__ void bf16_weight_fragments(const GemmLseArgs& a) {
  using A = acc_t<T>;
  wait_for_previous_grid();
  const int64_t steps = bf16_mma_steps(a.channels);
  const int64_t columns = bf16_mma_columns(a.c_out);
  const int64_t index = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (index < columns) {
    static_cast<A*>(a.column_biases)[index] =
        index < a.c_out
            ? column_bias(static_cast<const T*>(a.bias), a.bias_stride, static_cast<const T*>(a.conv_bias), index)
            : A(0);
  }
  if (index >= bf16_mma_fragment_lanes(a.channels, a.c_out)) return;
  const int lane = static_cast<int>(index % 32), g = lane / 4, t = lane % 4;
  const int64_t step = index / 32 % steps, col = index / 32 / steps * 8 + g;
  const A* weight_sum = static_cast<const A*>(a.weight_sum);
  const auto value = [&](int64_t channel) {
    return channel < a.channels && col < a.c_out ? weight_sum[channel * a.c_out + col] : A(0);
  };
  const int64_t channel = step * kBf16MmaDepth + 2 * t;
  const Bf16PairCut lower = bf16_pair_cut(value(channel), value(channel + 1));
  const Bf16PairCut upper = bf16_pair_cut(value(channel + 8), value(channel + 9));
  static_cast<uint4*>(a.weight_fragments)[index] = make_uint4(lower.first, upper.first, lower.low, upper.low);
}

template <typename T>
__device__ __forceinline__ void bf16_mma_lse_tiles(const GemmLseArgs& a) {
  using A = acc_t<T>;
  static_assert(sizeof(A) == 4, "float accumulation (float16 and bfloat16 x)");
  constexpr GemmTileShape kShape = kGemmTiles[kBf16MmaTile];
  constexpr int kRows = kShape.rows, kCols = kShape.cols;
  constexpr int kWarpsM = 4, kWarpsN = 2, kWarpRows = kRows / kWarpsM, kWarpCols = kCols / kWarpsN;
  static_assert(kShape.mma && kWarpsM * kWarpsN * 32 == kGemmThreads && kWarpRows == 32 && kWarpCols == 32,
                "4 x 2 warps of 32 x 32");
  static_assert(kShape.depth == kBf16MmaDepth && kRows == kBf16MmaRows && kCols == kBf16MmaCols, "tuning.h's counts");
  constexpr int kFrags = kWarpRows / 16, kTiles = kWarpCols / 8;  // m16 fragments, n8 tiles a warp
  constexpr int kRowFrags = kRows / 16;
  // [step][row fragment][first, low][lane]: a lane's four registers of a fragment one 16-byte load, a warp's 512
  // contiguous bytes (no bank conflicts).
  extern __shared__ uint4 staged_sums[];
  __shared__ Lse<A> warp_states[kWarpsN][kRows];
  static_assert(sizeof(warp_states) == kBf16MmaStaticBytes, "tuning.h's count, which the launch opts in too");
  const int64_t row0 = int64_t{blockIdx.x} * kRows;
  wait_for_previous_grid();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;
  const int warp_row = warp / kWarpsN * kWarpRows, warp_col = warp % kWarpsN * kWarpCols;
  const int steps = static_cast<int>(bf16_mma_steps(a.channels));

  const int64_t col_tiles = (a.c_out + kCols - 1) / kCols;
  const int64_t tiles_per_run = (col_tiles + a.column_runs - 1) / a.column_runs;
  const int64_t first_tile = blockIdx.y * tiles_per_run;
  const int64_t end_tile = std::min(col_tiles, first_tile + tiles_per_run);
  // This warp's lane of n8 tile n at step s of column tile `tile`: fragments + ((tile * 8 + n) * steps + s) * 32.
  const uint4* fragments = static_cast<const uint4*>(a.weight_fragments) + (warp_col / 8 * steps) * 32 + lane;
  uint4 b_next[kTiles];
  const auto fetch = [&](int64_t tile, int step) {
    const uint4* from = fragments + (tile * 8 * steps + step) * 32;
#pragma unroll
    for (int n = 0; n < kTiles; ++n) b_next[n] = from[n * steps * 32];
  };
  if (first_tile < end_tile) fetch(first_tile, 0);  // in flight while the sums are staged

  // The block's sums cut once, a pair of neighbouring channels a thread at a time (a row's pairs neighbours in
  // memory), kStageBatch pairs' loads in flight together: with one at a time, each waited on, [41375, 150] -> 1239
  // took 337.0 us against 327.8 (H100, docs/limits.md section 107).
  constexpr int kStageBatch = 8;
  bool not_finite = false;
  {
    const float* sums = static_cast<const float*>(a.sums);
    const int pairs = steps * kBf16MmaDepth / 2;
    const int total = kRows * pairs;
    uint32_t* words = reinterpret_cast<uint32_t*>(staged_sums);
    for (int base = threadIdx.x; base < total; base += kStageBatch * kGemmThreads) {
      float v[kStageBatch][2];
#pragma unroll
      for (int j = 0; j < kStageBatch; ++j) {
        const int i = base + j * kGemmThreads;
        const int64_t row = row0 + i / pairs, channel = 2 * int64_t{i % pairs};
        const float* from = sums + row * a.channels + channel;
        const bool row_ok = i < total && row < a.batch;
        v[j][0] = row_ok && channel < a.channels ? from[0] : 0.f;
        v[j][1] = row_ok && channel + 1 < a.channels ? from[1] : 0.f;
      }
#pragma unroll
      for (int j = 0; j < kStageBatch; ++j) {
        const int i = base + j * kGemmThreads;
        if (i >= total) break;
        const int r = i / pairs, pair = i % pairs;
        not_finite |= !(isfinite(v[j][0]) && isfinite(v[j][1]));
        const Bf16PairCut cut = bf16_pair_cut(v[j][0], v[j][1]);
        // Its place: step pair / 8; lane (r % 8) * 4 + pair % 4; register r % 16 / 8 + 2 (pair % 8 / 4).
        const int step_pair = pair % 8;
        const int at = (r % 8 * 4 + step_pair % 4) * 4 + r % 16 / 8 + 2 * (step_pair / 4);
        const int frag = (pair / 8 * kRowFrags + r / 16) * 2;
        words[frag * 128 + at] = cut.first;
        words[(frag + 1) * 128 + at] = cut.low;
      }
    }
  }
  // Where no staged sum is outside the finite range (the usual case), first is its own kept piece.
  const bool sums_not_finite = __syncthreads_or(not_finite);

  const A* column_biases = static_cast<const A*>(a.column_biases) + warp_col + 2 * t;
  const A scale = static_cast<A>(a.scale);

  Lse<A> state[kFrags][2];  // rows g and g + 8 of each of the warp's fragments
#pragma unroll
  for (int f = 0; f < kFrags; ++f) state[f][0] = state[f][1] = Lse<A>{-INFINITY, A(0)};
  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    const int64_t n0 = tile * kCols;
    float2 bias[kTiles];  // columns 2t, 2t + 1 of each n8 tile
#pragma unroll
    for (int n = 0; n < kTiles; ++n) bias[n] = *reinterpret_cast<const float2*>(column_biases + n0 + 8 * n);
    A acc[kFrags][kTiles][4] = {};  // [fragment][n8 tile][row g col 2t, 2t + 1; row g + 8 col 2t, 2t + 1]
    for (int step = 0; step < steps; ++step) {
      uint4 b[kTiles];
#pragma unroll
      for (int n = 0; n < kTiles; ++n) b[n] = b_next[n];
      if (step + 1 < steps) {
        fetch(tile, step + 1);
      } else if (tile + 1 < end_tile) {
        fetch(tile + 1, 0);
      }
      uint4 first[kFrags], low[kFrags], kept[kFrags];
#pragma unroll
      for (int f = 0; f < kFrags; ++f) {
        const int frag = (step * kRowFrags + warp_row / 16 + f) * 2;
        first[f] = staged_sums[frag * 32 + lane];
        low[f] = staged_sums[(frag + 1) * 32 + lane];
        kept[f] = first[f];
        if (sums_not_finite) {
          kept[f] = make_uint4(bf16_pair_kept(first[f].x), bf16_pair_kept(first[f].y), bf16_pair_kept(first[f].z),
                               bf16_pair_kept(first[f].w));
        }
      }
#pragma unroll
      for (int n = 0; n < kTiles; ++n) {
        const uint32_t kept0 = bf16_pair_kept(b[n].x), kept1 = bf16_pair_kept(b[n].y);
#pragma unroll
        for (int f = 0; f < kFrags; ++f) {
          mma_bf16_16x8(acc[f][n], first[f].x, first[f].y, first[f].z, first[f].w, b[n].x, b[n].y);
          mma_bf16_16x8(acc[f][n], low[f].x, low[f].y, low[f].z, low[f].w, kept0, kept1);
          mma_bf16_16x8(acc[f][n], kept[f].x, kept[f].y, kept[f].z, kept[f].w, b[n].z, b[n].w);
        }
      }
    }
    // Columns past C_out become -inf.
    constexpr int kValues = 2 * kTiles;  // value j: n8 tile j / 2, column 2t + j % 2 of it
    bool col_valid[kValues];
#pragma unroll
    for (int j = 0; j < kValues; ++j) col_valid[j] = n0 + warp_col + j / 2 * 8 + 2 * t + j % 2 < a.c_out;
#pragma unroll
    for (int f = 0; f < kFrags; ++f) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // rows g, g + 8
        A v[kValues];
#pragma unroll
        for (int j = 0; j < kValues; ++j) {
          const A col_bias = j % 2 == 0 ? bias[j / 2].x : bias[j / 2].y;
          v[j] = col_valid[j] ? scale * acc[f][j / 2][2 * half + j % 2] + col_bias : A(-INFINITY);
        }
        lse_push_all(state[f][half], v);
      }
    }
  }
  // Each row's state: over the four lanes of its g, then over the kWarpsN warps of its rows in a fixed order (the
  // same result every run).
#pragma unroll
  for (int f = 0; f < kFrags; ++f) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const Lse<A> merged = group_lse<A, 4>(state[f][half]);
      if (t == 0) warp_states[warp % kWarpsN][warp_row + 16 * f + 8 * half + g] = merged;
    }
  }
  write_block_rows<T>(a, warp_states, row0);
}

// out[row] from the column runs' partial states: a warp per row, its lanes taking every 32nd run, merged in a fixed
// order (a thread per row would wait on one load after another when there are many runs and few rows).
constexpr int kMergeRowsPerBlock = kGemmThreads / 32;

template <typename T>
__device__ __forceinline__ void merge_column_runs(const GemmLseArgs& a) {
  using A = acc_t<T>;
  wait_for_previous_grid();
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t{blockIdx.x} * kMergeRowsPerBlock + threadIdx.x / 32;
  if (row >= a.batch) return;  // the whole warp
  const A* partial = static_cast<const A*>(a.partial_lse);
  Lse<A> state{-INFINITY, A(0)};
  for (int64_t s = lane; s < a.column_runs; s += 32) {
    const A* p = partial + (s * a.batch + row) * 2;
    state = lse_merge(state, Lse<A>{p[0], p[1]});
  }
  state = group_lse(state);
  if (lane == 0) static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(state));
}

}  // namespace
}  // namespace fusedlse
