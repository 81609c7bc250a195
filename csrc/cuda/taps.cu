// padding's per-tap sums (the forward's read of x when padding > 0) and their adjoint (the backward's write of
// grad_x), for the shapes the kernels take (kernels.h: TapSumsArgs, TapBroadcastArgs); fusedlse.cpp's ATen code
// computes the same for the others. Sums are only ever added, in an order fixed by the shape, never subtracted: an
// infinity in a cropped border reaches only the taps that keep it, and results are bitwise reproducible.
// Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

// Loads per lane in flight along a row: 16 of 2-byte elements, 8 of wider ones (a warp's load is then 1 KiB for
// float32 and 512 bytes for 16-bit types in flight per lane group).
template <typename T> constexpr int kTapUnroll = sizeof(T) == 2 ? 16 : 8;

__device__ __forceinline__ uint32_t divide(uint32_t n, FastDivisor d) { return (__umulhi(n, d.magic) + n) >> d.shift; }

// The segment of input i along a dimension cut as g describes (fusedlse::Cut::segment).
__device__ __forceinline__ int64_t segment_of(const TapCutGeometry& g, int64_t i, int64_t extent) {
  if (i < g.head) return i;
  if (i >= extent - g.tail) return g.segments - (extent - i);
  return g.head;
}

// The middle columns' sum of middle rows [first_row, end_row) of a plane (this lane's share), by 16-byte loads of
// whole rows (TapSumsArgs::vectors): lanes take the vectors in turn, kTapVectorLoads in flight each; a vector that
// holds a border column adds only its middle elements.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> middle_by_vectors(const T* plane_base, const TapSumsArgs& a, int64_t first_row,
                                                      int64_t end_row, int lane) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kLoads = kTapVectorLoads;
  const uint32_t per_row = static_cast<uint32_t>(a.width / kVec);
  const uint32_t count = static_cast<uint32_t>((end_row - first_row) * per_row);
  const int32_t first_col = a.cols.head, end_col = static_cast<int32_t>(a.width) - a.cols.tail;
  const T* rows = plane_base + first_row * a.stride_h;
  A sum = 0;
#pragma unroll 1
  for (uint32_t base = lane; base < count; base += 32 * kLoads) {
    uint4 v[kLoads];
    int32_t col[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const uint32_t e = base + 32 * u;
      const uint32_t r = divide(e, a.row_vectors);
      col[u] = static_cast<int32_t>(e - r * per_row) * kVec;
      if (e < count) {
        v[u] = load_once<kEvictFirst>(reinterpret_cast<const uint4*>(rows + r * a.stride_h + col[u]));
      } else {
        v[u] = make_uint4(0, 0, 0, 0);
        col[u] = first_col;  // all zeros: adds nothing
      }
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      if (col[u] >= first_col && col[u] + kVec <= end_col) {
        sum += vec_sum<T>(v[u]);
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          if (col[u] + k >= first_col && col[u] + k < end_col) sum += vec_elem<T>(v[u], k);
        }
      }
    }
  }
  return sum;
}

// The same by a load per element (rows not aligned, or W not a whole number of vectors): lanes 32 columns apart.
template <typename T>
__device__ __forceinline__ acc_t<T> middle_by_elements(const T* row, const TapSumsArgs& a, int lane) {
  using A = acc_t<T>;
  constexpr int kUnroll = kTapUnroll<T>;
  const int64_t middle_end = a.width - a.cols.tail;
  A sum = 0;
#pragma unroll 1
  for (int64_t j0 = a.cols.head + lane; j0 < middle_end; j0 += 32 * kUnroll) {
    A v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j0 + 32 * u;
      v[u] = j < middle_end ? to_acc(row[j]) : A(0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) sum += v[u];
  }
  return sum;
}

// Run `unit` (plane unit / chunks, rows [first_row, end_row)): its middle rows' partials (the middle columns' sum,
// then each border column's) into `partials`, its border rows' cells into the plane's cells of `grid`. Row and
// column indices are 32-bit (tap_path) and the output addresses are made after the loads: registers for the loads.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ void tap_run(const TapSumsArgs& a, int64_t unit, int lane) {
  using A = acc_t<T>;
  const int64_t plane = unit / a.chunks;
  const int32_t chunk = static_cast<int32_t>(unit - plane * a.chunks);
  const int64_t b = plane / a.channels, c = plane - b * a.channels;
  const T* base = static_cast<const T*>(a.x) + b * a.stride_b + c * a.stride_c;  // [H, W], rows contiguous
  const int32_t height = static_cast<int32_t>(a.height), width = static_cast<int32_t>(a.width);
  const int32_t first_row = chunk * static_cast<int32_t>(a.chunk_rows);
  const int32_t end_row = min(first_row + static_cast<int32_t>(a.chunk_rows), height);
  const int border_cols = a.cols.head + a.cols.tail;
  // Lane k < border_cols takes border column k one by one: the first cols.head, then the last cols.tail.
  const int32_t own_col = lane < a.cols.head ? lane : width - a.cols.tail + (lane - a.cols.head);
  // The run's middle rows [middle_first, middle_end); its border rows are the others.
  const int32_t middle_first = max(first_row, a.rows.head);
  const int32_t middle_end = min(end_row, height - a.rows.tail);
  A middle = 0, border = 0;
  for (int32_t g0 = middle_first; g0 < middle_end; g0 += static_cast<int32_t>(a.group_rows)) {
    const int32_t g1 = min(g0 + static_cast<int32_t>(a.group_rows), middle_end);
    if (a.vectors) {
      middle += middle_by_vectors<T, kEvictFirst>(base, a, g0, g1, lane);
    } else {
      for (int32_t i = g0; i < g1; ++i) middle += middle_by_elements(base + i * a.stride_h, a, lane);
    }
    if (lane < border_cols) {
      constexpr int kOwnLoads = 8;
#pragma unroll 1
      for (int32_t i0 = g0; i0 < g1; i0 += kOwnLoads) {
        A v[kOwnLoads];
#pragma unroll
        for (int u = 0; u < kOwnLoads; ++u) {
          v[u] = i0 + u < g1 ? to_acc(__ldg(base + (i0 + u) * a.stride_h + own_col)) : A(0);
        }
#pragma unroll
        for (int u = 0; u < kOwnLoads; ++u) border += v[u];
      }
    }
  }
  const bool middle_col = width - a.cols.tail > a.cols.head;
  A* cells = static_cast<A*>(a.grid) + plane * a.rows.segments * a.cols.segments;  // [row segments, col segments]
  for (int32_t i = first_row; i < end_row; ++i) {
    if (i >= middle_first && i < middle_end) continue;
    // A border row: its cells, one row of the grid.
    const T* row = base + i * a.stride_h;
    const A row_sum = warp_sum(middle_by_elements(row, a, lane));
    A* row_cells = cells + segment_of(a.rows, i, a.height) * a.cols.segments;
    if (lane == 0 && middle_col) row_cells[a.cols.head] = row_sum;
    if (lane < border_cols) row_cells[lane < a.cols.head ? lane : lane + (middle_col ? 1 : 0)] = to_acc(row[own_col]);
  }
  middle = warp_sum(middle);
  A* part = static_cast<A*>(a.partials) + unit * (1 + border_cols);  // [1 + border columns]
  if (lane == 0) part[0] = middle;
  if (lane < border_cols) part[1 + lane] = border;
}

// Blocks of kBlockThreads, at least kTapBlocksPerSm resident: more warps to cover each one's border loads.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads, kTapBlocksPerSm)
    tap_grid_kernel(const __grid_constant__ TapSumsArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t units = a.batch * a.channels * a.chunks;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  with_evict_first(a.evict_first, [&](auto evict_first) {
    for (int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5); unit < units;
         unit += warps) {
      tap_run<T, decltype(evict_first)::value>(a, unit, lane);
    }
  });
}

// A warp per plane: the middle row's cells (the runs' partials, lanes across runs, then a butterfly: a fixed order),
// then each tap's sum of the cells it keeps, lanes across taps; then, where asked, the plane's share of the cropped
// GEMM, lanes across columns, the taps in order (from shared memory: every lane needs every tap).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) tap_combine_kernel(const __grid_constant__ TapSumsArgs a) {
  __shared__ A staged_taps[kWarpsPerBlock][kMaxKernelTaps * kMaxKernelTaps];
  const A* partials = static_cast<const A*>(a.partials);  // [B*C, chunks, 1 + border columns]
  A* grid = static_cast<A*>(a.grid);                        // [B*C, row segments, column segments]
  A* sums = static_cast<A*>(a.sums);                        // [B*C, kH, kW]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int border_cols = a.cols.head + a.cols.tail;
  const bool middle_row = a.height - a.rows.tail > a.rows.head, middle_col = a.width - a.cols.tail > a.cols.head;
  const int64_t planes = a.batch * a.channels;
  const int taps = a.rows.taps * a.cols.taps;
  for (int64_t plane = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; plane < planes;
       plane += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    A* cells = grid + plane * a.rows.segments * a.cols.segments;
    if (middle_row) {
      A* middle_cells = cells + a.rows.head * a.cols.segments;
      for (int k = middle_col ? -1 : 0; k < border_cols; ++k) {
        A total = 0;
        for (int64_t chunk = lane; chunk < a.chunks; chunk += 32) {
          total += partials[(plane * a.chunks + chunk) * (1 + border_cols) + 1 + k];
        }
        total = warp_sum(total);
        const int cell = k < 0 ? a.cols.head : k < a.cols.head ? k : k + (middle_col ? 1 : 0);
        if (lane == 0) middle_cells[cell] = total;
      }
    }
    __syncwarp();  // the middle row's cells, written by lane 0, are read by every lane
    for (int tap = lane; tap < taps; tap += 32) {
      const int t = tap / a.cols.taps, u = tap - t * a.cols.taps;
      A total = 0;
      for (int r = a.rows.first[t]; r < a.rows.end[t]; ++r) {
        for (int q = a.cols.first[u]; q < a.cols.end[u]; ++q) total += cells[r * a.cols.segments + q];
      }
      sums[plane * taps + tap] = total;
      staged_taps[warp][tap] = total;
    }
    __syncwarp();
    if (a.shares != nullptr) {
      const int64_t c = plane % a.channels;
      const A* weight = static_cast<const A*>(a.weight_rows) + c * taps * a.c_out;  // [taps, c_out]
      A* share = static_cast<A*>(a.shares) + plane * a.c_out;                       // [c_out]
      constexpr int kLoads = 8;
      for (int64_t n = lane; n < a.c_out; n += 32) {
        A total = 0;
        for (int t0 = 0; t0 < taps; t0 += kLoads) {
          A w[kLoads];
#pragma unroll
          for (int u = 0; u < kLoads; ++u) w[u] = t0 + u < taps ? __ldg(weight + (t0 + u) * a.c_out + n) : A(0);
#pragma unroll
          for (int u = 0; u < kLoads; ++u) {
            if (t0 + u < taps) total += staged_taps[warp][t0 + u] * w[u];
          }
        }
        share[n] = total;
      }
      __syncwarp();  // staged_taps is the next plane's
    }
  }
}

// The adjoint's first step: each segment pair's value, the sum of the taps that keep it (taps in order).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) tap_spread_kernel(const __grid_constant__ TapBroadcastArgs a) {
  const A* taps = static_cast<const A*>(a.taps);
  A* grid = static_cast<A*>(a.grid);
  const int64_t cells = static_cast<int64_t>(a.rows.segments) * a.cols.segments;
  const int64_t total = a.batch * a.channels * cells;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * kBlockThreads) {
    const int64_t plane = e / cells;
    const int cell = static_cast<int>(e - plane * cells);
    const int r = cell / a.cols.segments, q = cell - r * a.cols.segments;
    const A* plane_taps = taps + plane * a.rows.taps * a.cols.taps;
    A value = 0;
    for (int t = 0; t < a.rows.taps; ++t) {
      if (r < a.rows.first[t] || r >= a.rows.end[t]) continue;
      for (int u = 0; u < a.cols.taps; ++u) {
        if (q >= a.cols.first[u] && q < a.cols.end[u]) value += plane_taps[t * a.cols.taps + u];
      }
    }
    grid[e] = value;
  }
}

// The elements the bulk broadcast (broadcast_hw of the middle cell's values) does not give their value: each plane's
// border rows, then its middle rows' border columns; every element where the plane has no middle cell.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) tap_border_kernel(const __grid_constant__ TapBroadcastArgs a) {
  using A = acc_t<T>;
  const A* grid = static_cast<const A*>(a.grid);  // [B*C, row segments, column segments]
  T* out = static_cast<T*>(a.out);                // [B, C, H, W], channels-last or contiguous
  const int64_t height = a.height, width = a.width;
  const int64_t border_rows = a.rows.head + a.rows.tail, border_cols = a.cols.head + a.cols.tail;
  const int64_t per_plane = border_rows * width + (height - border_rows) * border_cols;
  const int64_t total = a.batch * a.channels * per_plane;
  const int64_t cells = static_cast<int64_t>(a.rows.segments) * a.cols.segments;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * kBlockThreads) {
    const int64_t plane = e / per_plane;
    int64_t k = e - plane * per_plane, i = 0, j = 0;
    if (k < border_rows * width) {
      const int64_t r = k / width;
      j = k - r * width;
      i = r < a.rows.head ? r : height - border_rows + r;
    } else {
      k -= border_rows * width;
      const int64_t r = k / border_cols, q = k - r * border_cols;
      i = a.rows.head + r;
      j = q < a.cols.head ? q : width - border_cols + q;
    }
    const A value =
        grid[plane * cells + segment_of(a.rows, i, height) * a.cols.segments + segment_of(a.cols, j, width)];
    const int64_t b = plane / a.channels, c = plane - b * a.channels;
    const int64_t offset =
        a.channels_last ? ((b * height + i) * width + j) * a.channels + c : (plane * height + i) * width + j;
    out[offset] = from_acc<T>(value);
  }
}

template <typename T>
cudaError_t launch_tap_sums_typed(const TapSumsArgs& a, cudaStream_t stream) {
  tap_grid_kernel<T><<<static_cast<unsigned>(a.read_blocks), kBlockThreads, 0, stream>>>(a);
  tap_combine_kernel<acc_t<T>><<<static_cast<unsigned>(a.combine_blocks), kBlockThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_tap_border_typed(const TapBroadcastArgs& a, cudaStream_t stream) {
  tap_border_kernel<T><<<static_cast<unsigned>(a.blocks), kBlockThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_tap_sums(const TapSumsArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_tap_sums_typed<decltype(t)>(args, stream); });
}

cudaError_t launch_tap_spread(const TapBroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue, [&](auto t) {
    using A = acc_t<decltype(t)>;
    tap_spread_kernel<A><<<static_cast<unsigned>(args.spread_blocks), kBlockThreads, 0, stream>>>(args);
    return cudaGetLastError();
  });
}

cudaError_t launch_tap_border(const TapBroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_tap_border_typed<decltype(t)>(args, stream); });
}

int tap_sums_blocks_per_sm(ScalarKind kind) {
  return with_element_type(kind, 1, [](auto t) {
    return resident_blocks_per_sm(tap_grid_kernel<decltype(t)>, kBlockThreads);
  });
}

}  // namespace fusedlse
