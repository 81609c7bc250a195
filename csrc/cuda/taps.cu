// padding's per-tap sums (the forward's read of x when padding > 0) and their adjoint's first step (each segment
// pair's value; broadcast_hw.cu writes grad_x from them), for the shapes the kernels take (kernels.h: TapSumsArgs,
// TapBroadcastArgs); fusedlse.cpp's ATen code computes the same for the others. Sums are added in an order fixed by
// the shape, and subtracted only where every value they hold is finite (kSpanSumWalk: a run whose middle rows hold an
// infinity or a NaN is read again by adds alone): an infinity in a cropped border reaches only the taps that keep it,
// and results are bitwise reproducible.
// Only CUDA headers are included: see kernels.h. The stages, in the order x flows through them, are in kernels/.

#include "kernels.h"
#include "kernels/cut.cuh"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/read_tap_rows.cuh"
#include "kernels/read_tap_channels.cuh"
#include "kernels/combine_taps.cuh"
#include "kernels/small_plane_taps.cuh"
#include "kernels/cell_weight.cuh"
#include "kernels/keep_gemm.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

// tap_grid_kernel's border sums in dynamic shared memory: with border_side 0, a sum per lane and border column of
// each warp (a multiple of 16 bytes).
__host__ __device__ inline size_t tap_border_bytes(ScalarKind kind, int border_side, int border_cols) {
  if (border_side > 0) return 0;
  return static_cast<size_t>(kWarpsPerBlock) * 32 * border_cols * (kind == ScalarKind::kDouble ? 8 : 4);
}

// Blocks of kBlockThreads, at least kTapBlocksPerSm resident (registers capped to fit them): warps enough to keep the
// loads in flight. Dynamic shared memory: tap_grid_shared_bytes. A unit is a run of one plane's rows (tap_run: its
// middle rows by the span or the element walk, or kStagedWalk's staged walk, an instance of its own so the others keep
// their registers, and kStagedSpanWalk's, the staged walk taking the middle rows' span sums
// (TapSumsArgs::middle_by_span with a stage), one more; or kSpanSumWalk's middle rows summed whole,
// TapSumsArgs::middle_by_span, an instance of its own for kSide 1 and 2: in kRowsWalk's, beside the element walk, the
// kSide 0 16-bit ones spilled 4 bytes), or of a slice of channels' (kChannelsWalk, or row by row kChannelRowsWalk, an
// instance of its own: beside the flat walk, the kSide 2 instances spilled 4-32 bytes; channel_run; neighbouring warps
// take neighbouring slices of the same rows, which share lines of x).
enum TapWalk : int { kRowsWalk, kChannelsWalk, kStagedWalk, kChannelRowsWalk, kSpanSumWalk, kStagedSpanWalk };
template <typename T, int kSide, int kWalk>
__global__ void __launch_bounds__(kBlockThreads, kTapBlocksPerSm)
    tap_grid_kernel(const __grid_constant__ TapSumsArgs a) {
  using A = acc_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int border_cols = a.cols.head + a.cols.tail;
  A* warp_border_sums = reinterpret_cast<A*>(shared_bytes) + warp * border_cols * 32;
  // The rows walk's stages (TapSumsArgs::stage_rows), after every warp's border sums (a multiple of 16 bytes).
  T* warp_stage = reinterpret_cast<T*>(shared_bytes + tap_border_bytes(a.kind, a.border_side, border_cols) +
                                       static_cast<size_t>(warp) * a.stage_bytes);
  // Waits for the grid ahead (block 0 alone where beside_previous) and lets the combining launch start as the last of
  // these blocks do.
  start_beside_previous_grid(a.beside_previous);
  constexpr bool kChannels = kWalk == kChannelsWalk || kWalk == kChannelRowsWalk;
  const int64_t units = a.batch * (kChannels ? a.channel_slices : a.channels) * a.chunks;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  with_evict_first(a.evict_first, [&](auto evict_first) {
    for (int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; unit < units; unit += warps) {
      if constexpr (kChannels) {
        channel_run<T, decltype(evict_first)::value, kSide, kWalk == kChannelRowsWalk>(a, unit, lane,
                                                                                      warp_border_sums);
      } else {
        constexpr bool kStaged = kWalk == kStagedWalk || kWalk == kStagedSpanWalk;
        constexpr bool kBySpan = kWalk == kSpanSumWalk || kWalk == kStagedSpanWalk;
        tap_run<T, decltype(evict_first)::value, kSide, kStaged, kBySpan>(a, unit, lane, warp_border_sums, warp_stage);
      }
    }
  });
}

// f(std::integral_constant<int, W>) for the walk of tap_grid_kernel that args with `channels_walk` (flat), a stage
// of `stage_bytes` and `middle_by_span` take (TapSumsArgs::channels_walk, stage_bytes, middle_by_span).
template <typename R, typename F> R with_walk(bool channels_walk, int32_t stage_bytes, bool middle_by_span, F&& f) {
  if (channels_walk) return f(std::integral_constant<int, kChannelsWalk>{});
  if (stage_bytes > 0 && middle_by_span) return f(std::integral_constant<int, kStagedSpanWalk>{});
  if (stage_bytes > 0) return f(std::integral_constant<int, kStagedWalk>{});
  if (middle_by_span) return f(std::integral_constant<int, kSpanSumWalk>{});
  return f(std::integral_constant<int, kRowsWalk>{});
}

// f(std::integral_constant<int, S>) for S = side (0, 1 or 2), else `otherwise`.
template <typename R, typename F> R with_border_side(int side, R otherwise, F&& f) {
  switch (side) {
    case 0: return f(std::integral_constant<int, 0>{});
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return otherwise;
  }
}

// f(kernel) for the tap_grid_kernel instance that args of `border_side`, `channels_walk`, `channel_rows`,
// `stage_bytes` and `middle_by_span` take (TapSumsArgs), else `otherwise`: kVectorBorderSide has the rows walk's alone
// (whole-vector rows), for x of 2- and 4-byte elements; the channels walk row by row is float32's alone
// (plan::channel_walk_by_rows); the middle rows summed whole take borders in registers alone (border_side 1 and 2,
// plan::tap_middle_by_span).
template <typename T, typename R, typename F>
R with_tap_grid_kernel(int border_side, bool channels_walk, bool channel_rows, int32_t stage_bytes,
                       bool middle_by_span, R otherwise, F&& f) {
  if (channels_walk && channel_rows) {
    if constexpr (std::is_same_v<T, float>) {
      return with_border_side(border_side, otherwise, [&](auto side) {
        return f(tap_grid_kernel<T, decltype(side)::value, kChannelRowsWalk>);
      });
    }
    return otherwise;
  }
  if (border_side == kVectorBorderSide) {
    if constexpr (16 / sizeof(T) >= kVectorBorderSide) {
      if (!channels_walk && stage_bytes == 0 && !middle_by_span) {
        return f(tap_grid_kernel<T, kVectorBorderSide, kRowsWalk>);
      }
    }
    return otherwise;
  }
  return with_border_side(border_side, otherwise, [&](auto side) {
    constexpr int kSide = decltype(side)::value;
    return with_walk<R>(channels_walk, stage_bytes, middle_by_span, [&](auto walk) {
      constexpr int kWalk = decltype(walk)::value;
      if constexpr (kSide == 0 && kWalk == kSpanSumWalk) {
        return otherwise;
      } else {
        return f(tap_grid_kernel<T, kSide, kWalk>);
      }
    });
  });
}

// The combining kernels' kSide for the reader's border_side: kVectorBorderSide's partials as the shared-memory
// borders', in a loop (kSide 0).
constexpr int combine_side(int border_side) { return border_side == kVectorBorderSide ? 0 : border_side; }

// tap_combine_kernel's blocks per SM for borders of kSide columns a side (tuning.h kTapCombineBlocksPerSm; wider
// ones uncapped).
constexpr int tap_combine_blocks_per_sm(int side) { return side > 0 ? kTapCombineBlocksPerSm : 1; }

// The launch of combine_planes (kernels/combine_taps.cuh), at tap_combine_blocks_per_sm(kSide) blocks per SM.
template <typename T, bool kTapSums, int kSide, bool kStagedWeight>
__global__ void __launch_bounds__(kBlockThreads, tap_combine_blocks_per_sm(kSide))
    tap_combine_kernel(const __grid_constant__ TapSumsArgs a) {
  combine_planes<T, kTapSums, kSide, kStagedWeight>(a);
}

// The launch of combine_by_lane_groups (kernels/combine_taps.cuh).
template <typename A, int kSide, bool kTaps, bool kOwnTaps>
__global__ void __launch_bounds__(kBlockThreads) tap_group_combine_kernel(const __grid_constant__ TapSumsArgs a) {
  combine_by_lane_groups<A, kSide, kTaps, kOwnTaps>(a);
}

// The launch of spread_taps_over_cells (kernels/combine_taps.cuh).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) tap_spread_kernel(const __grid_constant__ TapBroadcastArgs a) {
  spread_taps_over_cells<A>(a);
}

// The launch of small_plane_taps (kernels/small_plane_taps.cuh).
template <typename T, bool kTapSums>
__global__ void __launch_bounds__(kSmallPlaneMaxThreads)
    small_plane_taps_kernel(const __grid_constant__ SmallPlaneTapArgs a) {
  small_plane_taps<T, kTapSums>(a);
}

// The launch of staged_plane_taps (kernels/small_plane_taps.cuh).
template <typename T, bool kTapSums>
__global__ void __launch_bounds__(kSmallPlaneMaxThreads)
    staged_plane_taps_kernel(const __grid_constant__ SmallPlaneTapArgs a) {
  staged_plane_taps<T, kTapSums>(a);
}

// The launch of cell_weight_values (kernels/cell_weight.cuh).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) cell_weight_values_kernel(const __grid_constant__ CellWeightArgs a) {
  cell_weight_values<T>(a);
}

// The launch of cell_weight_pairs (kernels/cell_weight.cuh).
template <typename T, int kTaps>
__global__ void __launch_bounds__(kBlockThreads) cell_weight_pairs_kernel(const __grid_constant__ CellWeightArgs a) {
  cell_weight_pairs<T, kTaps>(a);
}

// The launches of keep_matrix and keep_gemm_mend (kernels/keep_gemm.cuh).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) keep_matrix_kernel(const __grid_constant__ KeepGemmArgs a) {
  keep_matrix<T>(a);
}
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) keep_gemm_mend_kernel(const __grid_constant__ KeepGemmArgs a) {
  keep_gemm_mend<T>(a);
}

// f(T{}) for the 16-bit kinds KeepGemmArgs takes (with_element_type's switch, its other kinds left out of the
// instances); `otherwise` for the rest.
template <typename R, typename F> R with_16bit_type(ScalarKind kind, R otherwise, F&& f) {
  return with_element_type(kind, otherwise, [&](auto t) -> R {
    if constexpr (sizeof(t) == 2) {
      return f(t);
    } else {
      return otherwise;
    }
  });
}

// f(kernel) for tap_combine_kernel<T, tap_sums, kSide, staged_weight>; float64 has no staged instance (its stage
// spilled 20-108 bytes on sm_90 under the cap; TapSumsArgs::weight_pitch is 0 for it).
template <typename T, int kSide, typename F> auto with_tap_combine_kernel(bool tap_sums, bool staged_weight, F&& f) {
  if constexpr (sizeof(T) < 8) {
    if (staged_weight) {
      return tap_sums ? f(tap_combine_kernel<T, true, kSide, true>) : f(tap_combine_kernel<T, false, kSide, true>);
    }
  }
  return tap_sums ? f(tap_combine_kernel<T, true, kSide, false>) : f(tap_combine_kernel<T, false, kSide, false>);
}

// f(kernel) for tap_group_combine_kernel<A, kSide, taps, own_taps> (own_taps only with the taps).
template <typename A, int kSide, typename F> auto with_tap_group_combine_kernel(bool taps, bool own_taps, F&& f) {
  if (!taps) return f(tap_group_combine_kernel<A, kSide, false, false>);
  return own_taps ? f(tap_group_combine_kernel<A, kSide, true, true>)
                  : f(tap_group_combine_kernel<A, kSide, true, false>);
}

template <typename T>
cudaError_t launch_tap_sums_typed(const TapSumsArgs& a, cudaStream_t stream) {
  const size_t shared_bytes = tap_grid_shared_bytes(a.kind, a.border_side, a.cols.head + a.cols.tail, a.stage_bytes);
  // Launched after the previous grid (launch.cuh): the combining launch's start overlaps the reader's last blocks.
  const cudaError_t read = with_tap_grid_kernel<T>(
      a.border_side, a.channels_walk, a.channel_rows, a.stage_bytes, a.middle_by_span, cudaErrorInvalidValue,
      [&](auto kernel) {
        return launch_after_previous_with_shared(kernel, static_cast<unsigned>(a.read_blocks), kBlockThreads,
                                                 shared_bytes, stream, a);
      });
  if (read != cudaSuccess || a.combine_blocks == 0) return read;
  return with_border_side(combine_side(a.border_side), cudaErrorInvalidValue, [&](auto side) {
    constexpr int kSide = decltype(side)::value;
    if (a.group_lanes > 0) {
      return with_tap_group_combine_kernel<acc_t<T>, kSide>(a.sums != nullptr, a.own_taps, [&](auto kernel) {
        return launch_after_previous(kernel, static_cast<unsigned>(a.combine_blocks), kBlockThreads, stream, a);
      });
    }
    return with_tap_combine_kernel<T, kSide>(a.sums != nullptr, a.weight_pitch > 0, [&](auto combine) {
      return launch_after_previous_with_shared(combine, static_cast<unsigned>(a.combine_blocks), kBlockThreads,
                                               tap_combine_shared_bytes(a), stream, a);
    });
  });
}

}  // namespace

cudaError_t launch_tap_sums(const TapSumsArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_tap_sums_typed<decltype(t)>(args, stream); });
}

cudaError_t launch_tap_spread(const TapBroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using A = acc_t<decltype(t)>;
    tap_spread_kernel<A><<<static_cast<unsigned>(args.blocks), kBlockThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_small_plane_taps(const SmallPlaneTapArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using T = decltype(t);
    if (args.staged_planes > 0) {
      const auto kernel =
          args.sums != nullptr ? staged_plane_taps_kernel<T, true> : staged_plane_taps_kernel<T, false>;
      const size_t shared = staged_plane_shared_bytes(
          static_cast<size_t>(args.staged_planes), static_cast<size_t>(args.height * args.width),
          static_cast<size_t>(args.plane_pitch),
          static_cast<size_t>(args.row_segments * args.column_segments + args.taps_h * args.taps_w), sizeof(acc_t<T>));
      kernel<<<static_cast<unsigned>(args.blocks), args.threads, shared, stream>>>(args);
      return cudaGetLastError();
    }
    const size_t shared = static_cast<size_t>(args.row_segments * args.column_segments + args.taps_h * args.taps_w) *
                          sizeof(acc_t<T>) * static_cast<size_t>(args.pitch);
    const auto kernel = args.sums != nullptr ? small_plane_taps_kernel<T, true> : small_plane_taps_kernel<T, false>;
    kernel<<<static_cast<unsigned>(args.blocks), args.threads, shared, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_cell_weight(const CellWeightArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using T = decltype(t);
    // Launched after the previous grid (launch.cuh): a reader of x may then start beside it (forward_split's W.sum
    // for groups; forward_cropped_cuda's tap reader).
    const int64_t taps = args.kernel_h * args.kernel_w;
    if (args.by_pairs && taps > kCellWeightRegisterTaps) return cudaErrorInvalidValue;
    const auto kernel = !args.by_pairs ? cell_weight_values_kernel<T>
                        : taps <= 16   ? cell_weight_pairs_kernel<T, 16>
                                       : cell_weight_pairs_kernel<T, kCellWeightRegisterTaps>;
    return launch_after_previous(kernel, static_cast<unsigned>(args.blocks), kBlockThreads, stream, args);
  });
}

cudaError_t launch_keep_matrix(const KeepGemmArgs& args, int64_t blocks, cudaStream_t stream) {
  return with_16bit_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    keep_matrix_kernel<decltype(t)><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_keep_gemm_mend(const KeepGemmArgs& args, int64_t blocks, cudaStream_t stream) {
  return with_16bit_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    keep_gemm_mend_kernel<decltype(t)><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

size_t tap_grid_shared_bytes(ScalarKind kind, int border_side, int border_cols, int32_t stage_bytes) {
  return tap_border_bytes(kind, border_side, border_cols) + static_cast<size_t>(kWarpsPerBlock) * stage_bytes;
}

int tap_sums_blocks_per_sm(ScalarKind kind, int border_side, int border_cols, bool channels_walk, bool channel_rows,
                           int32_t stage_bytes, bool middle_by_span) {
  return with_element_type(kind, 1, [&](auto t) {
    using T = decltype(t);
    return with_tap_grid_kernel<T>(border_side, channels_walk, channel_rows, stage_bytes, middle_by_span, 1,
                                   [&](auto kernel) {
                                     return resident_blocks_per_sm(
                                         kernel, kBlockThreads,
                                         tap_grid_shared_bytes(kind, border_side, border_cols, stage_bytes));
                                   });
  });
}

size_t tap_combine_shared_bytes(const TapSumsArgs& a) {
  return static_cast<size_t>(kWarpsPerBlock * combine_warp_values(a)) * (a.kind == ScalarKind::kDouble ? 8 : 4);
}

int tap_combine_resident_per_sm(ScalarKind kind, int border_side, bool tap_sums, bool staged_weight,
                                size_t shared_bytes) {
  return with_element_type(kind, 1, [&](auto t) {
    using T = decltype(t);
    return with_border_side(combine_side(border_side), 1, [&](auto side) {
      return with_tap_combine_kernel<T, decltype(side)::value>(tap_sums, staged_weight, [&](auto combine) {
        return resident_blocks_per_sm(combine, kBlockThreads, shared_bytes);
      });
    });
  });
}

int tap_group_combine_resident_per_sm(ScalarKind kind, int border_side, bool taps, bool own_taps) {
  return with_element_type(kind, 1, [&](auto t) {
    using A = acc_t<decltype(t)>;
    return with_border_side(combine_side(border_side), 1, [&](auto side) {
      return with_tap_group_combine_kernel<A, decltype(side)::value>(
          taps, own_taps, [&](auto combine) { return resident_blocks_per_sm(combine, kBlockThreads, 0); });
    });
  });
}

}  // namespace fusedlse
