// The split strategy's kernels (../plan.h): a reader of planes in any layout, in place (a group of lanes per plane or
// piece of one, a thread per few adjacent tiny planes, or a block per tile of them staged in shared memory), a reader
// of channels-last x by rows of channels, and the biases + logsumexp after cuBLAS's GEMM.
// Only CUDA headers are included: see kernels.h. The kernels' stages are in kernels/ (read_*, bias_lse).

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/read_channel_rows.cuh"
#include "kernels/read_plane_lanes.cuh"
#include "kernels/read_plane_runs.cuh"
#include "kernels/bias_lse.cuh"
#include "launch.cuh"
#include "once_per_key.h"

#include <cuda_pipeline_primitives.h>

#include <algorithm>

namespace fusedlse {
namespace {

// Groups of kLanes lanes take items (a piece of a plane) in order: neighbouring groups take neighbouring planes,
// whose bytes share cache lines in every layout, so each line is fetched from DRAM once. With pieces_in_block, a
// block's turn of kGroups items holds whole planes (pieces divides kGroups), and the group of a plane's first piece
// adds the plane's pieces in order.
// (Its body stays here: as a device function in kernels/, ptxas compiled every instance otherwise, untimed.)
template <typename T, int kLanes, Walk kWalk>
__global__ void __launch_bounds__(kSplitThreads) plane_lanes_kernel(PlaneLanesArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);
  constexpr int kGroups = kSplitThreads / kLanes;
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int lane = threadIdx.x % kLanes;
  const int64_t items = a.batch * a.channels * a.pieces;
  // kVectors: a plane's whole vectors; kInnerVectors: the most a plane holds (one fewer where it starts inside one);
  // kMaskedVectors: per plane.
  constexpr bool kVectorWalk = kWalk == Walk::kVectors || kWalk == Walk::kInnerVectors;
  const int64_t units = kVectorWalk ? a.width / a.vec : a.height * a.width;
  const RowStep step = kWalk == Walk::kRows ? row_step<kLanes>(a) : RowStep{};
  // kMaskedVectors: a plane's elements from its first to its last, in 32-bit (PlaneLanesArgs).
  const int32_t span = static_cast<int32_t>((a.height - 1) * a.stride_h + a.width);
  __shared__ A piece_sums[kGroups];  // pieces_in_block: this turn's items' sums
  const int group = threadIdx.x / kLanes;
  // Every lane of a group runs the same number of trips, so the shuffles see the whole warp; every thread of a block
  // the same number of turns, so the block's barriers see it whole.
  for (int64_t first = int64_t{blockIdx.x} * kGroups; first < items; first += int64_t{gridDim.x} * kGroups) {
    const int64_t item = first + group;
    A total = A(0);
    if (item < items) {
      // No division where there is nothing to divide by (one piece; batches and channels evenly spaced, which the
      // host passes as one channel): a 64-bit division costs more than the loads of a tiny plane.
      const int64_t plane_index = a.pieces == 1 ? item : item / a.pieces;
      const int64_t piece = item - plane_index * a.pieces;
      const int64_t b = a.channels == 1 ? plane_index : plane_index / a.channels, c = plane_index - b * a.channels;
      const T* plane = x + b * a.stride_b + c * a.stride_c;
      const int64_t begin = piece * a.piece_units;
      if constexpr (kWalk == Walk::kMaskedVectors) {
        constexpr int32_t kVec = 16 / sizeof(T);
        const uintptr_t address = reinterpret_cast<uintptr_t>(plane);
        const int32_t misalign = static_cast<int32_t>((address & 15) / sizeof(T));
        const int32_t vectors = (misalign + span + kVec - 1) / kVec;  // this plane's; a.piece_units counts the most
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return masked_lane_share<T, kLanes, decltype(evict_first)::value>(
              reinterpret_cast<const uint4*>(address - (address & 15)), misalign, span,
              static_cast<int32_t>(a.stride_h), static_cast<int32_t>(a.width), static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(vectors, begin + a.piece_units)));
        });
      } else if constexpr (kWalk == Walk::kInnerVectors) {
        // The plane's elements before its first aligned 16-byte vector, its whole vectors from there (lane_share's
        // vector walk), and the elements after them: the last piece adds those around the vectors one by one.
        constexpr int32_t kVec = 16 / sizeof(T);
        const int32_t head = static_cast<int32_t>(((16 - (reinterpret_cast<uintptr_t>(plane) & 15)) & 15) / sizeof(T));
        const int64_t plane_units = (a.width - head) / kVec;
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return lane_share<T, kLanes, Walk::kVectors, decltype(evict_first)::value>(
              a, step, plane + head, static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(plane_units, begin + a.piece_units)));
        });
        if (piece == a.pieces - 1) {
          for (int32_t e = lane; e < head; e += kLanes) total += to_acc(plane[e]);
          for (int64_t e = head + plane_units * kVec + lane; e < a.width; e += kLanes) total += to_acc(plane[e]);
        }
      } else {
        total = with_evict_first(a.evict_first, [&](auto evict_first) {
          return lane_share<T, kLanes, kWalk, decltype(evict_first)::value>(
              a, step, plane, static_cast<int32_t>(begin + lane),
              static_cast<int32_t>(imin(units, begin + a.piece_units)));
        });
      }
      if (kWalk == Walk::kVectors && piece == a.pieces - 1) {
        for (int64_t e = units * a.vec + lane; e < a.width; e += kLanes) total += to_acc(plane[e]);
      }
    }
    total = group_sum<A, kLanes>(total);
    if (!a.pieces_in_block) {
      if (lane == 0 && item < items) out[item] = total;
      continue;
    }
    if (lane == 0) piece_sums[group] = total;
    __syncthreads();
    if (lane == 0 && item < items && item % a.pieces == 0) {  // the plane's first piece
      A plane_total = piece_sums[group];
      for (int p = 1; p < a.pieces; ++p) plane_total += piece_sums[group + p];
      out[item / a.pieces] = plane_total;
    }
    __syncthreads();  // the sums are read before the next turn writes its own
  }
  end_after_previous_grid(a.beside_previous);
}

// The launch of plane_runs_sums (kernels/read_plane_runs.cuh).
template <typename T, int kPlane>
__global__ void __launch_bounds__(kSplitThreads) plane_runs_kernel(PlaneRunsArgs a) {
  plane_runs_sums<T, kPlane>(a);
}

// The run walk's kernel for a: a plane size of its own where planes tile the vectors (a.vector_plane).
template <typename T> auto plane_runs_kernel_for(const PlaneRunsArgs& a) {
  switch (a.vector_plane) {
    case 1: return plane_runs_kernel<T, 1>;
    case 2: return plane_runs_kernel<T, 2 * sizeof(T) <= 16 ? 2 : 0>;
    case 4: return plane_runs_kernel<T, 4 * sizeof(T) <= 16 ? 4 : 0>;
    case 8: return plane_runs_kernel<T, 8 * sizeof(T) <= 16 ? 8 : 0>;
  }
  return plane_runs_kernel<T, 0>;
}

// The launch of plane_tiles_sums (kernels/read_plane_runs.cuh).
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) plane_tiles_kernel(PlaneRunsArgs a) {
  plane_tiles_sums<T>(a);
}

// A block per item (a batch's chunk of pixels) at a time; kWide: more channels than threads (ChannelRowsArgs). W.sum
// first, where asked.
// (Its body stays here: as a device function in kernels/, ptxas compiled every instance otherwise, untimed.)
template <typename T, bool kWide>
__global__ void __launch_bounds__(kSplitThreads) channel_rows_kernel(ChannelRowsArgs a) {
  using A = acc_t<T>;
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  __shared__ A column[kSplitThreads];  // each thread's sum down its rows, added per channel at the chunk's end
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int64_t items = a.batch * a.chunks;
  const int channels = static_cast<int>(a.channels), rows = a.rows_per_step;
  const int t = threadIdx.x;
  // Narrow: thread t reads channel t % C of pixel t / C of each step (threads past rows x C read nothing). Wide:
  // channels t, t + kSplitThreads, ..., as many as lie below C.
  const int row = kWide ? 0 : t / channels, channel = kWide ? t : t - row * channels;
  const int wide_channels = kWide ? (channels - t + kSplitThreads - 1) / kSplitThreads : 0;
  // Every thread runs the same items, so the syncs see the whole block.
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t b = a.chunks == 1 ? item : item / a.chunks, chunk = item - b * a.chunks;
    const int64_t begin = chunk * a.chunk_pixels, end = imin(a.pixels, begin + a.chunk_pixels);
    const T* batch_x = x + b * a.stride_b;
    A* batch_out = out + b * a.channels * a.chunks + chunk;  // channel c's sum at c * chunks
    if constexpr (kWide) {
      A acc[kChannelRowsWideLoads];
      with_evict_first(a.evict_first, [&](auto evict_first) {
        wide_columns_share<T, kChannelRowsWideLoads, decltype(evict_first)::value>(
            batch_x + begin * a.stride_p + t, a.stride_p, end - begin, kSplitThreads, wide_channels, acc);
      });
#pragma unroll
      for (int j = 0; j < kChannelRowsWideLoads; ++j) {
        if (j >= wide_channels) break;
        batch_out[static_cast<int64_t>(t + j * kSplitThreads) * a.chunks] = acc[j];
      }
    } else {
      A acc = A(0);
      if (row < rows) {
        const int64_t first = begin + row;
        const int64_t count = first < end ? (end - first + rows - 1) / rows : 0;
        acc = with_evict_first(a.evict_first, [&](auto evict_first) {
          return column_share<T, decltype(evict_first)::value>(batch_x + first * a.stride_p + channel,
                                                               rows * a.stride_p, count);
        });
      }
      column[t] = acc;
      __syncthreads();
      if (t < channels) {
        A total = A(0);
        for (int r = 0; r < rows; ++r) total += column[r * channels + t];  // in row order: reproducible
        batch_out[static_cast<int64_t>(t) * a.chunks] = total;
      }
      __syncthreads();  // the next item rewrites `column`
    }
  }
  end_after_previous_grid(a.beside_previous);
}

// The launch of channel_vectors_sums (kernels/read_channel_rows.cuh).
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) channel_vectors_kernel(ChannelRowsArgs a) {
  channel_vectors_sums<T>(a);
}

// The launch of pixel_vectors_sums (kernels/read_channel_rows.cuh).
template <typename T, bool kChunked>
__global__ void __launch_bounds__(kSplitThreads) pixel_vectors_kernel(ChannelRowsArgs a) {
  pixel_vectors_sums<T, kChunked>(a);
}

template <typename T> auto channel_rows_kernel_for(const ChannelRowsArgs& a) {
  if (a.pixel_vectors) return a.pixel_chunks ? pixel_vectors_kernel<T, true> : pixel_vectors_kernel<T, false>;
  if (a.period_vectors > 0) return channel_vectors_kernel<T>;
  return a.channels > kSplitThreads ? channel_rows_kernel<T, true> : channel_rows_kernel<T, false>;
}

// The kernel that walks a's planes with kLanes lanes each.
template <typename T, int kLanes> auto plane_lanes_kernel_for(const PlaneLanesArgs& a) {
  if (a.vec > 1) {
    if (a.height > 1) return plane_lanes_kernel<T, kLanes, Walk::kMaskedVectors>;
    return a.inner_vectors ? plane_lanes_kernel<T, kLanes, Walk::kInnerVectors>
                           : plane_lanes_kernel<T, kLanes, Walk::kVectors>;
  }
  return a.height == 1 ? plane_lanes_kernel<T, kLanes, Walk::kOneRow> : plane_lanes_kernel<T, kLanes, Walk::kRows>;
}

// f(the kernel for a), or `fallback` for a lane count it has none for.
template <typename R, typename F> R with_plane_lanes_kernel(const PlaneLanesArgs& a, R fallback, F&& f) {
  return with_element_type(a.kind, fallback, [&](auto element) {
    using T = decltype(element);
    switch (a.lanes) {
      case 1: return f(plane_lanes_kernel_for<T, 1>(a));
      case 4: return f(plane_lanes_kernel_for<T, 4>(a));
      case 8: return f(plane_lanes_kernel_for<T, 8>(a));
      case 32: return f(plane_lanes_kernel_for<T, 32>(a));
    }
    return fallback;
  });
}

// Dynamic shared memory of a bias_lse block: the biases' sum staged, or none.
template <typename A> size_t bias_lse_shared_bytes(int64_t c_out) {
  const size_t bytes = static_cast<size_t>(c_out) * sizeof(A);
  return bytes <= static_cast<size_t>(kBiasLseMaxStagedBytes) ? bytes : 0;
}

// The launch of bias_lse_rows (kernels/bias_lse.cuh).
template <typename T, int kLanes, bool kStaged, bool kSplit = false>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_kernel(BiasLseArgs a) {
  bias_lse_rows<T, kLanes, kStaged, kSplit>(a);
}

// The launch of bias_lse_block_rows (kernels/bias_lse.cuh).
template <typename T, bool kStaged, bool kSplit = false>
__global__ void __launch_bounds__(kSplitThreads) bias_lse_block_kernel(BiasLseArgs a) {
  bias_lse_block_rows<T, kStaged, kSplit>(a);
}

// The launch of bias_lse_row (kernels/bias_lse.cuh).
template <typename T, bool kSplit = false>
__global__ void __launch_bounds__(kBiasLseRowThreads) bias_lse_row_kernel(BiasLseArgs a) {
  bias_lse_row<T, kSplit>(a);
}

// The launch of shares_lse_rows (kernels/bias_lse.cuh).
template <typename T, bool kStaged, bool kWeighted, int kThreads = kSplitThreads>
__global__ void __launch_bounds__(kThreads) shares_lse_kernel(BiasLseArgs a) {
  shares_lse_rows<T, kStaged, kWeighted, kThreads>(a);
}

// One value's bfloat16 pieces (bf16_cut) in the slots' order of Bf16PiecesArgs: first, then low and kept in the left
// factor's order (kAlongColumns) or kept and low in the right one's.
struct Bf16Slots {
  __nv_bfloat16 first, second, third;
};
template <bool kAlongColumns> __device__ __forceinline__ Bf16Slots bf16_slots(float v) {
  const Bf16Cut cut = bf16_cut(v);
  return kAlongColumns ? Bf16Slots{cut.first, cut.low, cut.kept} : Bf16Slots{cut.first, cut.kept, cut.low};
}

// One factor of cuBLAS's GEMM as bfloat16 pieces (Bf16PiecesArgs): a thread per two neighbouring values of the factor
// padded to the slots' depth (its columns, or its rows for the right factor), writing each slot's pair as one 4-byte
// store (every slot and row starts on an even element: depth and dst_stride are multiples of kBf16PiecesAlign; the
// right factor's odd last column pairs with its padding); blockIdx.y steps rows, the threads of x pairs of columns,
// so no division. Its grid waits for the one ahead, which wrote the factor.
template <bool kAlongColumns>
__global__ void __launch_bounds__(kSplitThreads) bf16_pieces_kernel(const __grid_constant__ Bf16PiecesArgs a) {
  wait_for_previous_grid();
  __nv_bfloat16* dst = static_cast<__nv_bfloat16*>(a.dst);
  const int64_t rows = kAlongColumns ? a.rows : a.depth, cols = kAlongColumns ? a.depth : a.dst_stride;
  const int64_t slot = kAlongColumns ? a.depth : a.depth * a.dst_stride;  // from one slot to the next in dst
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const bool row_inside = kAlongColumns || r < a.rows;
    for (int64_t c = 2 * (int64_t{blockIdx.x} * kSplitThreads + threadIdx.x); c < cols;
         c += 2 * int64_t{gridDim.x} * kSplitThreads) {
      const float* src = a.src + r * a.cols + c;
      const Bf16Slots left = bf16_slots<kAlongColumns>(row_inside && c < a.cols ? src[0] : 0.f);
      const Bf16Slots right = bf16_slots<kAlongColumns>(row_inside && c + 1 < a.cols ? src[1] : 0.f);
      __nv_bfloat162* first = reinterpret_cast<__nv_bfloat162*>(dst + r * a.dst_stride + c);
      first[0] = __halves2bfloat162(left.first, right.first);
      first[slot / 2] = __halves2bfloat162(left.second, right.second);
      first[slot] = __halves2bfloat162(left.third, right.third);
    }
  }
}

// The launch of regroup_nan_rows (kernels/bias_lse.cuh).
template <typename T>
__global__ void __launch_bounds__(kSplitThreads) regroup_nan_rows_kernel(const __grid_constant__ GroupedRowsArgs g) {
  regroup_nan_rows<T>(g);
}

// Blocks of kKernel (kThreads threads) that fit on the current device at once, counted at kShared bytes of
// dynamic shared memory (the most its launches take), from the occupancy calculator once per device: the float64
// kernels' registers (58-71) leave room for 3 blocks a multiprocessor on an H200 where the split kernels' share
// (resident_split_blocks) counts 8.
template <auto kKernel, size_t kShared, int kThreads = kSplitThreads> int64_t resident_bias_lse_blocks() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 1;
  return once_per_key(device, [device] {
    int multiprocessors = 0;
    const cudaError_t read = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
    if (read != cudaSuccess) return int64_t{1};
    return int64_t{std::max(multiprocessors, 1)} * resident_blocks_per_sm(kKernel, kThreads, kShared);
  });
}

// bias_lse's row kernel (kKernel, a bias_lse_row_kernel): a block per row, as many as fit on the device at once.
template <auto kKernel> cudaError_t launch_bias_lse_rows(const BiasLseArgs& a, cudaStream_t stream) {
  const int64_t resident = resident_bias_lse_blocks<kKernel, 0, kBiasLseRowThreads>();
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
  return launch_after_previous(kKernel, blocks, kBiasLseRowThreads, stream, a);
}

template <typename T, bool kStaged>
cudaError_t launch_bias_lse_staged(const BiasLseArgs& a, int64_t max_blocks, size_t shared, cudaStream_t stream) {
  constexpr size_t kMostShared = kStaged ? kBiasLseMaxStagedBytes : 0;
  if (a.channels > 1 || a.row_sums != nullptr) {
    const auto launch = [&](auto kernel, int64_t resident, int threads) {
      const auto blocks = static_cast<unsigned>(std::min({max_blocks, resident, a.batch}));
      return launch_after_previous_with_shared(kernel, blocks, threads, shared, stream, a);
    };
    if (a.row_sums != nullptr && a.threads == kGemvWideThreads) {
      constexpr auto kKernel = shares_lse_kernel<T, kStaged, true, kGemvWideThreads>;
      return launch(kKernel, resident_bias_lse_blocks<kKernel, kMostShared, kGemvWideThreads>(), kGemvWideThreads);
    }
    if (a.row_sums != nullptr) {
      constexpr auto kKernel = shares_lse_kernel<T, kStaged, true>;
      return launch(kKernel, resident_bias_lse_blocks<kKernel, kMostShared>(), kSplitThreads);
    }
    constexpr auto kKernel = shares_lse_kernel<T, kStaged, false>;
    return launch(kKernel, resident_bias_lse_blocks<kKernel, kMostShared>(), kSplitThreads);
  }
  // Rows of enough logits to keep a block busy, and too few of them for a warp per row to fill a quarter of the
  // device: a block per row (C_out 2892 on 70 rows, r18: one warp per row walked each row alone).
  const bool block_per_row = a.c_out >= 2 * kSplitThreads && a.batch * 32 * 4 < max_blocks * kSplitThreads;
  const bool row_kernel = block_per_row && a.c_out <= kBiasLseRowThreads * kBiasLseRowLoads;
  if (a.splits > 1 && row_kernel) return launch_bias_lse_rows<bias_lse_row_kernel<T, true>>(a, stream);
  if (a.splits > 1 && block_per_row) {  // split-K's partials (plan::gemm_tiling): a block or a warp per row
    constexpr auto kKernel = bias_lse_block_kernel<T, kStaged, true>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
    return launch_after_previous_with_shared(kKernel, blocks, kSplitThreads, shared, stream, a);
  }
  if (a.splits > 1) {
    constexpr int64_t kRowsPerBlock = kSplitThreads / 32;
    constexpr auto kKernel = bias_lse_kernel<T, 32, kStaged, true>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const int64_t blocks = std::min<int64_t>(resident, (a.batch + kRowsPerBlock - 1) / kRowsPerBlock);
    return launch_after_previous_with_shared(kKernel, static_cast<unsigned>(blocks), kSplitThreads, shared, stream,
                                             a);
  }
  if (row_kernel) return launch_bias_lse_rows<bias_lse_row_kernel<T, false>>(a, stream);
  if (block_per_row) {
    constexpr auto kKernel = bias_lse_block_kernel<T, kStaged>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(resident, a.batch));
    return launch_after_previous_with_shared(kKernel, blocks, kSplitThreads, shared, stream, a);
  }
  return with_row_lanes((a.c_out + kBiasLseValuesPerLane - 1) / kBiasLseValuesPerLane, [&](auto lanes) {
    constexpr int64_t kRowsPerBlock = kSplitThreads / decltype(lanes)::value;
    constexpr auto kKernel = bias_lse_kernel<T, decltype(lanes)::value, kStaged>;
    const int64_t resident = std::min(max_blocks, resident_bias_lse_blocks<kKernel, kMostShared>());
    const int64_t blocks = std::min<int64_t>(resident, (a.batch + kRowsPerBlock - 1) / kRowsPerBlock);
    return launch_after_previous_with_shared(kKernel, static_cast<unsigned>(blocks), kSplitThreads, shared, stream,
                                             a);
  });
}

}  // namespace

cudaError_t launch_plane_lanes(const PlaneLanesArgs& a, cudaStream_t stream) {
  return with_plane_lanes_kernel(a, cudaErrorInvalidValue, [&](auto kernel) {
    return launch_after_previous(kernel, static_cast<unsigned>(a.blocks), kSplitThreads, stream, a);
  });
}

// Dynamic shared memory of the run walk's block: its staged sums, padded (staged_slot); or the staged walk's two
// tiles.
template <typename T> size_t plane_runs_shared_bytes(const PlaneRunsArgs& a) {
  if (a.staged) return 2 * sizeof(uint4) * static_cast<size_t>(plane_tile_vectors(a.item_planes, a.plane, sizeof(T)));
  const int64_t sums = kSplitThreads * a.item_planes;
  return static_cast<size_t>(sums + sums / 32 + 1) * sizeof(acc_t<T>);
}

cudaError_t launch_plane_runs(const PlaneRunsArgs& a, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    return launch_after_previous_with_shared(a.staged ? plane_tiles_kernel<T> : plane_runs_kernel_for<T>(a),
                                             static_cast<unsigned>(a.blocks), kSplitThreads,
                                             plane_runs_shared_bytes<T>(a), stream, a);
  });
}

int plane_runs_blocks_per_sm(const PlaneRunsArgs& a) {
  return with_element_type(a.kind, 1, [&](auto element) {
    using T = decltype(element);
    return resident_blocks_per_sm(a.staged ? plane_tiles_kernel<T> : plane_runs_kernel_for<T>(a), kSplitThreads,
                                  plane_runs_shared_bytes<T>(a));
  });
}

cudaError_t launch_channel_rows(const ChannelRowsArgs& a, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    return launch_after_previous_with_shared(channel_rows_kernel_for<T>(a), static_cast<unsigned>(a.blocks),
                                             kSplitThreads, static_cast<size_t>(a.shared_bytes), stream, a);
  });
}

int channel_rows_blocks_per_sm(const ChannelRowsArgs& a) {
  return with_element_type(a.kind, 1, [&](auto element) {
    return resident_blocks_per_sm(channel_rows_kernel_for<decltype(element)>(a), kSplitThreads,
                                  static_cast<size_t>(a.shared_bytes));
  });
}

int plane_lanes_blocks_per_sm(const PlaneLanesArgs& a) {
  return with_plane_lanes_kernel(a, 1, [](auto kernel) { return resident_blocks_per_sm(kernel, kSplitThreads); });
}

cudaError_t launch_bias_lse(const BiasLseArgs& a, int64_t max_blocks, cudaStream_t stream) {
  return with_element_type(a.kind, cudaErrorInvalidValue, [&](auto element) {
    using T = decltype(element);
    const size_t shared = bias_lse_shared_bytes<acc_t<T>>(a.c_out);
    return shared > 0 ? launch_bias_lse_staged<T, true>(a, max_blocks, shared, stream)
                      : launch_bias_lse_staged<T, false>(a, max_blocks, 0, stream);
  });
}

cudaError_t launch_regroup_nan_rows(const GroupedRowsArgs& g, int64_t max_blocks, cudaStream_t stream) {
  return with_element_type(g.lse.kind, cudaErrorInvalidValue, [&](auto element) {
    const int64_t blocks = std::clamp<int64_t>((g.lse.batch + kRegroupPassRows - 1) / kRegroupPassRows, 1,
                                                max_blocks);
    return launch_after_previous(regroup_nan_rows_kernel<decltype(element)>, static_cast<unsigned>(blocks),
                                 kSplitThreads, stream, g);
  });
}

cudaError_t launch_bf16_pieces(const Bf16PiecesArgs& a, int64_t max_blocks, cudaStream_t stream) {
  static_assert(kBf16PieceSlots == 3, "bf16_pieces_kernel writes three slots");
  const int64_t rows = a.along_columns ? a.rows : a.depth, cols = a.along_columns ? a.depth : a.dst_stride;
  const int64_t pairs = (cols + 1) / 2;
  const int64_t x_blocks = std::clamp<int64_t>((pairs + kSplitThreads - 1) / kSplitThreads, 1, 64);
  const int64_t y_blocks = std::clamp<int64_t>(4 * max_blocks / x_blocks, 1, std::min(rows, kMaxGridY));
  const dim3 grid(static_cast<unsigned>(x_blocks), static_cast<unsigned>(y_blocks));
  return a.along_columns ? launch_after_previous(bf16_pieces_kernel<true>, grid, kSplitThreads, stream, a)
                         : launch_after_previous(bf16_pieces_kernel<false>, grid, kSplitThreads, stream, a);
}

}  // namespace fusedlse
