// The tiled GEMM + online logsumexp (kernels.h, GemmLseArgs): the split strategy's epilogue and the gemm_lse op.
// Register-blocked SIMT: each block stages `kGemmDepth` channels of its rows' sums and of W.sum in shared memory
// (double-buffered through registers, so the next step's loads fly while this one's FMAs run), each thread keeps a
// thread_rows x thread_cols block of logits in registers, and when a column tile is complete the logits go straight
// into the rows' logsumexp states: no [B, C_out] tensor is ever written. Only CUDA headers are included: see
// kernels.h. The kernels' stages are in kernels/gemm_lse.cuh.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/gemm_lse.cuh"
#include "launch.cuh"

#include <cuda_pipeline_primitives.h>

#include <algorithm>
#include <type_traits>
#include <utility>

namespace fusedlse {
namespace {

// Float accumulation keeps kGemmBlocksPerSm blocks per multiprocessor (128 registers); double accumulation gets
// one (255 registers): tuning.h, gemm_blocks_per_sm.
// kPartial: split-K's block (GemmLseArgs::k_splits), T its accumulation type: the raw logits of its column tile over
// its channel range into partial_logits, no biases, no logsumexp.
// kSumsInX: the sums are x's one-element planes where they lie (GemmLseArgs::sums_out); the blocks of the first
// column run save what they load on their first column tile, so every sum is written once.
template <typename T, int kTile, bool kPartial = false, bool kSumsInX = false>
__global__ void __launch_bounds__(kGemmThreads, gemm_blocks_per_sm(kTile, sizeof(acc_t<T>)))
    gemm_lse_kernel(const __grid_constant__ GemmLseArgs a) {
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
    if (a.column_runs == 1) {
      static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(merged));
    } else {
      A* partial = static_cast<A*>(a.partial_lse) + (blockIdx.y * a.batch + row) * 2;
      partial[0] = merged.max_value;
      partial[1] = merged.scaled_sum;
    }
  }
}

// --- float64 on tensor cores (kGemmTiles[...].mma) ----------------------------------------------------------------
// The same GEMM + logsumexp as gemm_lse_kernel for double accumulation, its FMAs by the warp-wide float64 matrix
// instructions (mma.sync: m16n8k8 on sm_90, m8n8k4 on sm_80 and later; exact FMAs, as the SIMT kernel's). A block of
// kGemmThreads takes kRows = 32 rows and kCols columns per column tile, as 2 x 4 warps of 16 rows x kCols / 4
// columns (kCols / 32 n8 tiles). Lane (g, t) = (lane / 4, lane % 4) holds, per the PTX fragment layout, A's (the
// sums') rows g and g + 8 at channel t (and t + 4), B's (W.sum's) channel t (and t + 4) at column g and C's rows g
// and g + 8 at columns 2t and 2t + 1 of an 8-column tile: the thread's logits lie in rows g and g + 8 of its warp's
// rows.

// The tensor-core tile's launch bound: the blocks its architecture's multiprocessor holds (tuning.h).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr int kMmaLaunchBlocks = gemm_blocks_per_sm(kMmaTile, 8, kSm90SharedBytesPerSm);
#else
constexpr int kMmaLaunchBlocks = gemm_blocks_per_sm(kMmaTile, 8);
#endif

// kPartial, kSumsInX: as gemm_lse_kernel's. kPlanes: the block sums its rows' planes of x itself (sum_tile_planes)
// into staged_sums, which then hold all of its channels, and runs its GEMM on them.
template <typename T, int kTile, bool kPartial = false, bool kSumsInX = false, bool kPlanes = false>
__global__ void __launch_bounds__(kGemmThreads, kMmaLaunchBlocks)
    mma_lse_kernel(const __grid_constant__ GemmLseArgs a) {
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
  __syncthreads();
  if (threadIdx.x >= kRows) return;
  const int64_t row = row0 + threadIdx.x;
  if (row >= a.batch) return;
  Lse<A> merged = warp_states[0][threadIdx.x];
#pragma unroll
  for (int w = 1; w < kWarpsN; ++w) merged = lse_merge(merged, warp_states[w][threadIdx.x]);
  if (a.column_runs == 1) {
    static_cast<T*>(a.out)[row] = from_acc<T>(ten_lse(merged));
  } else {
    A* partial = static_cast<A*>(a.partial_lse) + (blockIdx.y * a.batch + row) * 2;
    partial[0] = merged.max_value;
    partial[1] = merged.scaled_sum;
  }
}

// out[row] from the column runs' partial states: a warp per row, its lanes taking every 32nd run, merged in a fixed
// order (a thread per row would wait on one load after another when there are many runs and few rows).
constexpr int kMergeRowsPerBlock = kGemmThreads / 32;

template <typename T>
__global__ void __launch_bounds__(kGemmThreads) gemm_lse_merge_kernel(const __grid_constant__ GemmLseArgs a) {
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

// A row of B per group of kLanes lanes (GemmLseArgs; plan::rows_lse_applies and rows_lse_tiling): the block stages
// W.sum and the biases' sum once, padded to whole chunks of kRowsLseChunk columns, and, trip after trip, its rows'
// sums.
// Lane l of a group takes the row's chunks l, l + kLanes, ...: a chunk's logits in registers (an FMA per channel and
// column, W.sum by 16-byte loads that every group's lane reads alike), then the biases and the lane's logsumexp; the
// group merges its lanes' states once per row. Unlike a tile, a row costs its own C_out columns and C_in channels.
template <typename T, int kLanes>
__global__ void __launch_bounds__(kRowsLseThreads) rows_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  using A = acc_t<T>;
  constexpr int kRows = kRowsLseThreads / kLanes;
  constexpr int kSumPitch = kRows + 1;  // odd: the staging stores, a row's channels lane after lane, hit all banks
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int channels = static_cast<int>(a.channels), c_out = static_cast<int>(a.c_out);
  const int padded = (c_out + kRowsLseChunk - 1) / kRowsLseChunk * kRowsLseChunk;
  // Whole chunks of the accumulation type from offset 0: every array below starts 16-byte aligned.
  A* staged_wsum = reinterpret_cast<A*>(shared_bytes);  // [C_in][padded], zeros past C_out
  A* staged_bias = staged_wsum + channels * padded;      // [padded]: bias + conv_bias, as the CPU path adds them
  A* staged_sums = staged_bias + padded;                 // [C_in][kSumPitch]: this trip's rows
  // The biases are the caller's, ready before this grid starts (launch.cuh): staged while the reader ends.
  stage_bias_total<T>(a, staged_bias, padded, kRowsLseThreads);
  wait_for_previous_grid();
  const A* sums = static_cast<const A*>(a.sums);
  const A* wsum = static_cast<const A*>(a.weight_sum);
  // W.sum by asynchronous copies, a row of it at a time (no division per value). With a few loads in flight per
  // thread, the staging took several round trips to L2 on every block.
  for (int k = 0; k < channels; ++k) {
    for (int col = threadIdx.x; col < padded; col += kRowsLseThreads) {
      copy_async(staged_wsum + k * padded + col, wsum + k * c_out + (col < c_out ? col : 0), col < c_out);
    }
  }
  __pipeline_commit();
  const A scale = static_cast<A>(a.scale);
  const int lane = threadIdx.x % kLanes, local_row = threadIdx.x / kLanes;
  // A trip's sums in a row (row r, channel c) from this thread's first: one division here, none per value.
  const int first_r = threadIdx.x / channels, first_c = threadIdx.x - first_r * channels;
  const int step_r = kRowsLseThreads / channels, step_c = kRowsLseThreads - step_r * channels;
  for (int64_t first = int64_t{blockIdx.x} * kRows; first < a.batch; first += int64_t{gridDim.x} * kRows) {
    const int rows_here = static_cast<int>(std::min<int64_t>(kRows, a.batch - first));
    __syncthreads();  // the last trip's reads of staged_sums are done
    const A* from = sums + first * channels;  // this trip's rows: rows_here x C_in values in a row
    int r = first_r, c = first_c;
    for (int i = threadIdx.x; i < rows_here * channels; i += kRowsLseThreads) {
      copy_async(staged_sums + c * kSumPitch + r, from + i, true);
      r += step_r;
      c += step_c;
      if (c >= channels) c -= channels, ++r;
    }
    __pipeline_commit();
    __pipeline_wait_prior(0);  // this trip's sums, and on the first trip W.sum
    __syncthreads();
    Lse<A> state{-INFINITY, A(0)};
    if (local_row < rows_here) {  // a whole group or none of it
      for (int c0 = lane * kRowsLseChunk; c0 < c_out; c0 += kLanes * kRowsLseChunk) {
        A logits[kRowsLseChunk] = {};
#pragma unroll 4
        for (int k = 0; k < channels; ++k) {
          const A s = staged_sums[k * kSumPitch + local_row];
          A w[kRowsLseChunk];
          load_run<A, kRowsLseChunk>(staged_wsum + k * padded + c0, w);
#pragma unroll
          for (int j = 0; j < kRowsLseChunk; ++j) logits[j] = fma(s, w[j], logits[j]);
        }
        A col_bias[kRowsLseChunk], v[kRowsLseChunk];
        load_run<A, kRowsLseChunk>(staged_bias + c0, col_bias);
        // Columns past C_out, in the row's last chunk only, become -inf, which adds nothing (their logits are not
        // always 0: an infinite sum times W.sum's padding of 0 is NaN).
#pragma unroll
        for (int j = 0; j < kRowsLseChunk; ++j) v[j] = scale * logits[j] + col_bias[j];
        if (c0 + kRowsLseChunk > c_out) {
#pragma unroll
          for (int j = 0; j < kRowsLseChunk; ++j) {
            if (c0 + j >= c_out) v[j] = -INFINITY;
          }
        }
        lse_push_all(state, v);
      }
    }
    state = group_lse<A, kLanes>(state);
    if (lane == 0 && local_row < rows_here) static_cast<T*>(a.out)[first + local_row] = from_acc<T>(ten_lse(state));
  }
  __pipeline_wait_prior(0);  // a block with no trip (none is launched) would leave W.sum's copies in flight
}

// The narrow epilogue of rows of kNarrowLseSmallRowBytes of logits or fewer, held to kNarrowLseSmallRowBlocks blocks
// a multiprocessor (tuning.h says why); the wider ones are left to ptxas' choice of registers.
template <typename T, int kCols>
constexpr bool narrow_lse_small_rows = kCols * sizeof(acc_t<T>) <= kNarrowLseSmallRowBytes;

template <typename T, int kCols, int kLanes>
__global__ void __launch_bounds__(kNarrowLseThreads) narrow_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  narrow_lse<T, kCols, kLanes>(a);
}

template <typename T, int kCols, int kLanes>
__global__ void __launch_bounds__(kNarrowLseThreads, kNarrowLseSmallRowBlocks)
    narrow_lse_small_rows_kernel(const __grid_constant__ GemmLseArgs a) {
  narrow_lse<T, kCols, kLanes>(a);
}

// The narrow epilogue's kernel for T, kCols and kLanes.
template <typename T, int kCols, int kLanes> constexpr auto narrow_lse_kernel_of() {
  if constexpr (narrow_lse_small_rows<T, kCols>) return narrow_lse_small_rows_kernel<T, kCols, kLanes>;
  else return narrow_lse_kernel<T, kCols, kLanes>;
}

// f(the narrow kernel of `kind`, `columns` and `lanes` (NarrowLseTiling's)), or `fallback` for sizes it has none for.
template <typename R, typename F> R with_narrow_lse_kernel(ScalarKind kind, int columns, int lanes, R fallback, F&& f) {
  return with_element_type(kind, fallback, [&](auto element) {
    using T = decltype(element);
    const auto with_lanes = [&](auto cols) {
      constexpr int kCols = decltype(cols)::value;
      if (lanes == 8) return f(narrow_lse_kernel_of<T, kCols, 8>(), kCols, 8);
      if (lanes == 32) return f(narrow_lse_kernel_of<T, kCols, 32>(), kCols, 32);
      return fallback;
    };
    switch (columns) {
      case 4: return with_lanes(std::integral_constant<int, 4>{});
      case 8: return with_lanes(std::integral_constant<int, 8>{});
      case 16: return with_lanes(std::integral_constant<int, 16>{});
      case 32: return with_lanes(std::integral_constant<int, 32>{});
    }
    return fallback;
  });
}

// Lets `kernel` take shared_bytes of dynamic shared memory: past kDefaultSharedBytesPerBlock a block must opt in.
template <typename K> cudaError_t allow_shared_bytes(K kernel, int64_t shared_bytes) {
  if (shared_bytes <= kDefaultSharedBytesPerBlock) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
}

template <typename T, int kLanes>
cudaError_t launch_rows_lanes(const GemmLseArgs& a, int64_t shared_bytes, int64_t max_blocks, cudaStream_t stream) {
  constexpr int64_t kRows = kRowsLseThreads / kLanes;
  const int64_t blocks = std::clamp<int64_t>((a.batch + kRows - 1) / kRows, 1, std::max<int64_t>(max_blocks, 1));
  return launch_after_previous_with_shared(rows_lse_kernel<T, kLanes>, static_cast<unsigned>(blocks),
                                           kRowsLseThreads, static_cast<size_t>(shared_bytes), stream, a);
}

// Split-K's partial kernels depend on the accumulation type only: one per tile for all of float's kinds.
template <typename T, int kTile>
cudaError_t launch_tile(const GemmLseArgs& a, cudaStream_t stream) {
  using A = acc_t<T>;
  const bool split = a.k_splits > 1;
  const dim3 grid(static_cast<unsigned>((a.batch + kGemmTiles[kTile].rows - 1) / kGemmTiles[kTile].rows),
                  static_cast<unsigned>(a.column_runs), static_cast<unsigned>(split ? a.k_splits : 1));
  // x read in place: only x of the accumulation type (plan::in_epilogue_applies).
  constexpr bool kXIsSums = std::is_same_v<T, A>;
  if (a.sums_out != nullptr && !kXIsSums) return cudaErrorInvalidValue;
  // The tensor-core tile summing x's planes: whole channel ranges (no split) that its shared memory holds.
  if (a.plane_width > 0 && (!kGemmTiles[kTile].mma || split || a.channels > kTilePlanesMaxChannels ||
                            a.plane_width > kTilePlanesMaxWidth || a.sums_out == nullptr)) {
    return cudaErrorInvalidValue;
  }
  if constexpr (kGemmTiles[kTile].mma) {
    if constexpr (sizeof(A) == 8) {
      if (a.plane_width > 0) {
        return launch_after_previous(mma_lse_kernel<A, kTile, false, false, true>, grid, kGemmThreads, stream, a);
      }
      if (a.sums_out != nullptr) {
        return split ? launch_after_previous(mma_lse_kernel<A, kTile, true, true>, grid, kGemmThreads, stream, a)
                     : launch_after_previous(mma_lse_kernel<A, kTile, false, true>, grid, kGemmThreads, stream, a);
      }
      return split ? launch_after_previous(mma_lse_kernel<A, kTile, true>, grid, kGemmThreads, stream, a)
                   : launch_after_previous(mma_lse_kernel<T, kTile>, grid, kGemmThreads, stream, a);
    } else {
      return cudaErrorInvalidValue;  // float64 only (plan::gemm_tiling)
    }
  } else if constexpr (sizeof(A) == 8 && kTile >= 2) {
    return cudaErrorInvalidValue;  // float64 takes tiles 0 and 1 or the tensor-core ones (plan::gemm_tiling)
  } else {
    if constexpr (kXIsSums) {
      if (a.sums_out != nullptr) {
        return split ? launch_after_previous(gemm_lse_kernel<A, kTile, true, true>, grid, kGemmThreads, stream, a)
                     : launch_after_previous(gemm_lse_kernel<A, kTile, false, true>, grid, kGemmThreads, stream, a);
      }
    }
    return split ? launch_after_previous(gemm_lse_kernel<A, kTile, true>, grid, kGemmThreads, stream, a)
                 : launch_after_previous(gemm_lse_kernel<T, kTile>, grid, kGemmThreads, stream, a);
  }
}

template <typename T, int... kTiles>
cudaError_t launch_tile_of(const GemmLseArgs& a, cudaStream_t stream, std::integer_sequence<int, kTiles...>) {
  cudaError_t result = cudaErrorInvalidValue;
  ((a.tile == kTiles ? (result = launch_tile<T, kTiles>(a, stream), true) : false) || ...);
  return result;
}

}  // namespace

cudaError_t launch_gemm_lse(const GemmLseArgs& a, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    cudaError_t result = launch_tile_of<T>(a, stream, std::make_integer_sequence<int, kGemmTileCount>{});
    if (result != cudaSuccess || a.column_runs == 1 || a.k_splits > 1) return result;
    const unsigned blocks = static_cast<unsigned>((a.batch + kMergeRowsPerBlock - 1) / kMergeRowsPerBlock);
    return launch_after_previous(gemm_lse_merge_kernel<T>, blocks, kGemmThreads, stream, a);
  });
}

cudaError_t launch_rows_lse(const GemmLseArgs& a, int lanes, int64_t shared_bytes, int64_t max_blocks,
                            cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    return with_row_lanes(lanes, [&](auto group) {  // lanes: a power of two
      return launch_rows_lanes<T, decltype(group)::value>(a, shared_bytes, max_blocks, stream);
    });
  });
}

cudaError_t launch_narrow_lse(const GemmLseArgs& a, int columns, int lanes, int64_t shared_bytes, int64_t max_blocks,
                              cudaStream_t stream) {
  // No cudaFuncSetAttribute on every call: narrow_lse_blocks_per_sm let the kernel take the most any launch takes,
  // and the host asks it once per device and kernel, before that kernel's first launch (ops_cuda.cpp).
  return with_narrow_lse_kernel(a.kind, columns, lanes, cudaErrorInvalidValue, [&](auto kernel, int cols, int group) {
    // max_blocks across all k_splits ranges: each range's row blocks take an equal share.
    const int64_t rows_per_block = kNarrowLseThreads / group * narrow_lse_rows(cols);
    const int64_t ranges = std::max<int64_t>(a.k_splits, 1);
    const int64_t blocks = std::clamp<int64_t>((a.batch + rows_per_block - 1) / rows_per_block, 1,
                                               std::max<int64_t>(max_blocks / ranges, 1));
    return launch_after_previous_with_shared(kernel, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(ranges)),
                                             kNarrowLseThreads, static_cast<size_t>(shared_bytes), stream, a);
  });
}

int narrow_lse_blocks_per_sm(ScalarKind kind, int columns, int lanes, int64_t shared_bytes) {
  return with_narrow_lse_kernel(kind, columns, lanes, 1, [&](auto kernel, int, int) {
    if (allow_shared_bytes(kernel, kNarrowLseMaxSharedBytes) != cudaSuccess) return 1;
    return resident_blocks_per_sm(kernel, kNarrowLseThreads, static_cast<size_t>(shared_bytes));
  });
}

int rows_lse_blocks_per_sm(ScalarKind kind, int lanes, int64_t shared_bytes) {
  return with_element_type(kind, 1, [&](auto element) {
    using T = decltype(element);
    return with_row_lanes(lanes, [&](auto group) {  // lanes: a power of two
      return resident_blocks_per_sm(rows_lse_kernel<T, decltype(group)::value>, kRowsLseThreads,
                                    static_cast<size_t>(shared_bytes));
    });
  });
}

}  // namespace fusedlse
