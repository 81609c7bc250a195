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

// The launch of gemm_lse_tiles (kernels/gemm_lse.cuh).
template <typename T, int kTile, bool kPartial = false, bool kSumsInX = false>
__global__ void __launch_bounds__(kGemmThreads, gemm_blocks_per_sm(kTile, sizeof(acc_t<T>)))
    gemm_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  gemm_lse_tiles<T, kTile, kPartial, kSumsInX>(a);
}

// The tensor-core tile's launch bound: the blocks its architecture's multiprocessor holds (tuning.h).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr int kMmaLaunchBlocks = gemm_blocks_per_sm(kMmaTile, 8, kSm90SharedBytesPerSm);
#else
constexpr int kMmaLaunchBlocks = gemm_blocks_per_sm(kMmaTile, 8);
#endif

// The launch of mma_lse_tiles (kernels/gemm_lse.cuh).
template <typename T, int kTile, bool kPartial = false, bool kSumsInX = false, bool kPlanes = false>
__global__ void __launch_bounds__(kGemmThreads, kMmaLaunchBlocks)
    mma_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  mma_lse_tiles<T, kTile, kPartial, kSumsInX, kPlanes>(a);
}

// The launches of bf16_mma_lse_tiles and of the W.sum fragments it reads (kernels/gemm_lse.cuh).
template <typename T>
__global__ void __launch_bounds__(kGemmThreads, kBf16MmaBlocksPerSm)
    bf16_mma_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  bf16_mma_lse_tiles<T>(a);
}
template <typename T>
__global__ void __launch_bounds__(kGemmThreads) bf16_weight_fragments_kernel(const __grid_constant__ GemmLseArgs a) {
  bf16_weight_fragments<T>(a);
}

// The launch of merge_column_runs (kernels/gemm_lse.cuh).
template <typename T>
__global__ void __launch_bounds__(kGemmThreads) gemm_lse_merge_kernel(const __grid_constant__ GemmLseArgs a) {
  merge_column_runs<T>(a);
}

// A row of B per group of kLanes lanes (GemmLseArgs; plan::rows_lse_applies and rows_lse_tiling): the block stages
// W.sum and the biases' sum once, padded to whole chunks of kRowsLseChunk columns, and, trip after trip, its rows'
// sums.
// Lane l of a group takes the row's chunks l, l + kLanes, ...: a chunk's logits in registers (an FMA per channel and
// column, W.sum by 16-byte loads that every group's lane reads alike), then the biases and the lane's logsumexp; the
// group merges its lanes' states once per row. Unlike a tile, a row costs its own C_out columns and C_in channels.
// (Its body stays here: as a device function in kernels/gemm_lse.cuh, ptxas scheduled its W.sum copies otherwise.)
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

template <typename T, int kCols, int kLanes, NarrowSource kSource>
__global__ void __launch_bounds__(kNarrowLseThreads) narrow_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  narrow_lse<T, kCols, kLanes, kSource>(a);
}

// The narrow epilogue summing x's planes itself: held to two blocks a multiprocessor (128 registers), where ptxas took
// 148 for float64's 4 columns (one block, 8 warps an SM to keep x's loads in flight); float64 rows of 8 to 32 logits
// would spill there, and keep ptxas' choice.
template <typename T, int kCols>
constexpr int narrow_lse_planes_min_blocks = sizeof(acc_t<T>) == 8 && kCols >= 8 ? 1 : 2;

template <typename T, int kCols, int kLanes>
__global__ void __launch_bounds__(kNarrowLseThreads, (narrow_lse_planes_min_blocks<T, kCols>))
    narrow_lse_planes_kernel(const __grid_constant__ GemmLseArgs a) {
  narrow_lse<T, kCols, kLanes, NarrowSource::kPlanesInX>(a);
}

template <typename T, int kCols, int kLanes, NarrowSource kSource>
__global__ void __launch_bounds__(kNarrowLseThreads, kNarrowLseSmallRowBlocks)
    narrow_lse_small_rows_kernel(const __grid_constant__ GemmLseArgs a) {
  narrow_lse<T, kCols, kLanes, kSource>(a);
}

// The narrow epilogue's kernel for T, kCols, kLanes and kSource. Summing x's planes (kPlanesInX), it is left to
// ptxas' choice of registers (its sums of planes hold a plane's loads beside the sums: held to the small rows' 80
// registers, they would spill). So is the kernel loading x's elements (kElementsInX): held to 80 registers, that of 8
// columns spilled 20-32 bytes (nvcc 13.0, sm_90), where the sums' kernel took 78, and that of 4 columns, 80 registers
// before its channel ranges, 12-16 bytes with them.
template <typename T, int kCols, int kLanes, NarrowSource kSource> constexpr auto narrow_lse_kernel_of() {
  constexpr bool kSmallRows = narrow_lse_small_rows<T, kCols> && kSource == NarrowSource::kSums;
  if constexpr (kSource == NarrowSource::kPlanesInX) return narrow_lse_planes_kernel<T, kCols, kLanes>;
  else if constexpr (kSmallRows) return narrow_lse_small_rows_kernel<T, kCols, kLanes, kSource>;
  else return narrow_lse_kernel<T, kCols, kLanes, kSource>;
}

// f(the narrow kernel of `kind`, `columns` and `lanes` (NarrowLseTiling's) for `source`), or `fallback` for sizes it
// has none for. x's elements only for 16-bit x (plan::narrow_reads_planes): the accumulation type's are its sums.
template <typename R, typename F>
R with_narrow_lse_kernel(ScalarKind kind, int columns, int lanes, NarrowSource source, R fallback, F&& f) {
  return with_element_type(kind, fallback, [&](auto element) {
    using T = decltype(element);
    const auto with_lanes = [&](auto cols, auto source_constant) {
      constexpr int kCols = decltype(cols)::value;
      constexpr NarrowSource kSource = decltype(source_constant)::value;
      if constexpr (kSource == NarrowSource::kElementsInX && std::is_same_v<T, acc_t<T>>) {
        return fallback;
      } else {
        if (lanes == 8) return f(narrow_lse_kernel_of<T, kCols, 8, kSource>(), kCols, 8);
        if (lanes == 32) return f(narrow_lse_kernel_of<T, kCols, 32, kSource>(), kCols, 32);
        return fallback;
      }
    };
    const auto with_columns = [&](auto source_constant) {
      switch (columns) {
        case 4: return with_lanes(std::integral_constant<int, 4>{}, source_constant);
        case 8: return with_lanes(std::integral_constant<int, 8>{}, source_constant);
        case 16: return with_lanes(std::integral_constant<int, 16>{}, source_constant);
        case 32: return with_lanes(std::integral_constant<int, 32>{}, source_constant);
      }
      return fallback;
    };
    switch (source) {
      case NarrowSource::kSums:
        return with_columns(std::integral_constant<NarrowSource, NarrowSource::kSums>{});
      case NarrowSource::kPlanesInX:
        return with_columns(std::integral_constant<NarrowSource, NarrowSource::kPlanesInX>{});
      case NarrowSource::kElementsInX:
        return with_columns(std::integral_constant<NarrowSource, NarrowSource::kElementsInX>{});
    }
    return fallback;
  });
}

// Lets `kernel`, of static_bytes of static shared memory, take shared_bytes of dynamic shared memory: a block whose
// static and dynamic shared memory together pass kDefaultSharedBytesPerBlock must opt in (the attribute bounds the
// dynamic part). Counting the dynamic part alone, the bfloat16 tile over 81-96 channels (48 KiB of pieces and 2 KiB of
// its own) failed with "invalid argument" in a process where no launch of more channels had opted in before (six
// cases of the fuzz of s88; docs/limits.md §110).
template <typename K> cudaError_t allow_shared_bytes(K kernel, int64_t shared_bytes, int64_t static_bytes = 0) {
  if (shared_bytes + static_bytes <= kDefaultSharedBytesPerBlock) return cudaSuccess;
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
  if constexpr (kTile == kBf16MmaTile) {
    // float16 and bfloat16 x alone (plan::bf16_tile_applies), their sums in one channel range (plan::gemm_tiling).
    if constexpr (sizeof(A) == 4 && !std::is_same_v<T, float>) {
      if (split || a.sums_out != nullptr || a.plane_width > 0 || a.weight_fragments == nullptr) {
        return cudaErrorInvalidValue;
      }
      const int64_t fragment_lanes = bf16_mma_fragment_lanes(a.channels, a.c_out);
      const auto fragment_blocks = static_cast<unsigned>((fragment_lanes + kGemmThreads - 1) / kGemmThreads);
      cudaError_t result =
          launch_after_previous(bf16_weight_fragments_kernel<T>, fragment_blocks, kGemmThreads, stream, a);
      const int64_t shared_bytes = bf16_mma_staged_bytes(a.channels);
      if (result == cudaSuccess) {
        result = allow_shared_bytes(bf16_mma_lse_kernel<T>, shared_bytes, kBf16MmaStaticBytes);
      }
      if (result != cudaSuccess) return result;
      return launch_after_previous_with_shared(bf16_mma_lse_kernel<T>, grid, kGemmThreads,
                                               static_cast<size_t>(shared_bytes), stream, a);
    } else {
      return cudaErrorInvalidValue;
    }
  } else if constexpr (kGemmTiles[kTile].mma) {
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

NarrowSource narrow_source(const GemmLseArgs& a) {
  if (a.plane_rows == 0) return NarrowSource::kSums;
  return a.plane_rows * a.plane_width == 1 ? NarrowSource::kElementsInX : NarrowSource::kPlanesInX;
}

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
  return with_narrow_lse_kernel(a.kind, columns, lanes, narrow_source(a), cudaErrorInvalidValue,
                                [&](auto kernel, int cols, int group) {
    // max_blocks across all k_splits ranges: each range's row blocks take an equal share.
    const int64_t rows_per_block = kNarrowLseThreads / group * narrow_lse_rows(cols);
    const int64_t ranges = std::max<int64_t>(a.k_splits, 1);
    const int64_t blocks = std::clamp<int64_t>((a.batch + rows_per_block - 1) / rows_per_block, 1,
                                               std::max<int64_t>(max_blocks / ranges, 1));
    return launch_after_previous_with_shared(kernel, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(ranges)),
                                             kNarrowLseThreads, static_cast<size_t>(shared_bytes), stream, a);
  });
}

int narrow_lse_blocks_per_sm(ScalarKind kind, int columns, int lanes, NarrowSource source, int64_t shared_bytes) {
  return with_narrow_lse_kernel(kind, columns, lanes, source, 1, [&](auto kernel, int, int) {
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
