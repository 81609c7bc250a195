// The backward's write of grad_x (BroadcastArgs), with padding as without: write_broadcast_values (a value per plane,
// or padding's adjoint a segment pair's value per element) and write_cut_rows (padding's adjoint a warp per contiguous
// row), the bodies of ../broadcast_hw.cu's broadcast_hw_kernel and broadcast_cut_rows_kernel. A pure write, so 16-byte
// stores, several per thread in flight, one trip of them per thread (the host sizes the grid). Plain stores: streaming
// ones (st.global.cs) wrote 1 GiB at 3.98 TB/s where plain ones reached 4.60 in a one-shot grid (H200,
// bench/experiments/write_stores.cu). I is the index type: 32-bit when every element index fits (integer division is
// then several times cheaper, and a division per vector must stay below the store rate).
#pragma once

#include "../launch.cuh"
#include "cut.cuh"
#include "load.cuh"

namespace fusedlse {
namespace {

// n / d, by a multiply and a shift where I is 32-bit (every index then lies below 2^31: broadcast_fits_32_bits).
template <typename I> __device__ __forceinline__ I quotient(I n, int64_t d, FastDivisor fast) {
  if constexpr (sizeof(I) == 4) {
    return divide(n, fast);
  } else {
    return n / static_cast<I>(d);
  }
}

// kCut: padding's adjoint (BroadcastArgs::cells) where broadcast_cut_rows_kernel does not take it, each element its
// segment pair's value. A vector within one row's middle columns of a middle row (contiguous), or within one pixel's
// channels (channels-last), takes its values at once; any other element by element, its row and column stepped along
// (contiguous) rather than divided out again.
template <typename T, typename I, bool kChannelsLast, bool kCut>
__device__ __forceinline__ void write_broadcast_values(const BroadcastArgs& a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const A* rows = static_cast<const A*>(a.rows);    // [B, C]
  const A* cells = static_cast<const A*>(a.cells);  // kCut: [segment pairs, B*C]
  T* out = static_cast<T*>(a.out);                  // [B, C, H, W] in the layout kChannelsLast names
  const I channels = static_cast<I>(a.channels), plane = static_cast<I>(a.plane);
  const I total = static_cast<I>(a.batch) * channels * plane;
  const I vectors = total / kVec;
  const int64_t planes = a.batch * a.channels;
  const I height = static_cast<I>(a.height), width = static_cast<I>(a.width);
  // kCut: the value of element (b*C + c, row i, column j).
  auto cell_value = [&](I plane_index, I i, I j) -> A {
    const int32_t cell =
        segment_of<I>(a.cut_rows, i, height) * a.cut_cols.segments + segment_of<I>(a.cut_cols, j, width);
    return __ldg(cells + cell * planes + plane_index);
  };
  auto middle_row = [&](I i) {
    return i >= static_cast<I>(a.middle_row_begin) && i < static_cast<I>(a.middle_row_end);
  };
  // rows index of output element e.
  auto row_of = [&](I e) -> I {
    if constexpr (kChannelsLast) {
      const I q = e / channels;
      return (q / plane) * channels + (e - q * channels);
    } else {
      return e / plane;
    }
  };
  // The value of output element e, found from e alone.
  auto element_value = [&](I e) -> A {
    if constexpr (kCut) {
      I plane_index, p;
      if constexpr (kChannelsLast) {
        const I q = quotient(e, a.channels, a.channels_divisor), b = quotient(q, a.plane, a.plane_divisor);
        plane_index = b * channels + (e - q * channels);
        p = q - b * plane;
      } else {
        plane_index = quotient(e, a.plane, a.plane_divisor);
        p = e - plane_index * plane;
      }
      const I i = quotient(p, a.width, a.width_divisor);
      return cell_value(plane_index, i, p - i * width);
    } else {
      return __ldg(rows + row_of(e));
    }
  };
  // The kVec output elements from e0 on, packed. One division per vector unless the vector crosses a row
  // (contiguous) or a pixel's channels (channels-last), where each element finds its own row.
  auto pack = [&](I e0) -> uint4 {
    T vals[kVec];
    if constexpr (kCut && kChannelsLast) {
      const I q = quotient(e0, a.channels, a.channels_divisor), c = e0 - q * channels;
      if (c + kVec <= channels) {
        const I b = quotient(q, a.plane, a.plane_divisor), p = q - b * plane;
        const I i = quotient(p, a.width, a.width_divisor), j = p - i * width;
        const int32_t cell =
            segment_of<I>(a.cut_rows, i, height) * a.cut_cols.segments + segment_of<I>(a.cut_cols, j, width);
        const A* v = cells + cell * planes + static_cast<int64_t>(b) * a.channels + c;
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = from_acc<T>(__ldg(v + k));
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = from_acc<T>(element_value(e0 + k));
      }
    } else if constexpr (kCut) {
      I r = quotient(e0, a.plane, a.plane_divisor);
      const I p = e0 - r * plane;
      I i = quotient(p, a.width, a.width_divisor), j = p - i * width;
      if (middle_row(i) && j >= static_cast<I>(a.middle_col_begin) &&
          j + kVec <= static_cast<I>(a.middle_col_end)) {
        // The middle cell: the one after the head's segments along each cut, no segment looked up.
        const int32_t middle_cell = a.cut_rows.head * a.cut_cols.segments + a.cut_cols.head;
        const T v = from_acc<T>(__ldg(cells + middle_cell * planes + r));
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = v;
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          vals[k] = from_acc<T>(cell_value(r, i, j));
          if (++j == width) {
            j = 0;
            if (++i == height) i = 0, ++r;
          }
        }
      }
    } else if constexpr (kChannelsLast) {
      const I q = e0 / channels, c = e0 - q * channels;
      if (c + kVec <= channels) {
        const A* r = rows + (q / plane) * channels + c;
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = from_acc<T>(__ldg(r + k));
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = from_acc<T>(__ldg(rows + row_of(e0 + k)));
      }
    } else {
      const I r = e0 / plane;
      if (e0 - r * plane + kVec <= plane) {
        const T v = from_acc<T>(__ldg(rows + r));
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = v;
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) vals[k] = from_acc<T>(__ldg(rows + row_of(e0 + k)));
      }
    }
    uint4 packed;
    memcpy(&packed, vals, sizeof(packed));
    return packed;
  };
  constexpr int kUnroll = kBroadcastVectorsPerThread;
  const I step = static_cast<I>(gridDim.x) * kBlockThreads * kUnroll;
  for (I first = static_cast<I>(blockIdx.x) * kBlockThreads * kUnroll + threadIdx.x; first < vectors; first += step) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I i = first + static_cast<I>(u) * kBlockThreads;
      if (i < vectors) v[u] = pack(i * kVec);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const I i = first + static_cast<I>(u) * kBlockThreads;
      if (i < vectors) reinterpret_cast<uint4*>(out)[i] = v[u];
    }
  }
  if (blockIdx.x == 0) {  // the last total % kVec elements
    for (I e = vectors * kVec + threadIdx.x; e < total; e += kBlockThreads) out[e] = from_acc<T>(element_value(e));
  }
}

// padding's adjoint on contiguous rows of at least 32 whole vectors (BroadcastArgs::rows_per_warp): a warp per row,
// the row's values found once and all loaded in one step: the middle value by every lane, the first and last
// vectors' elements (where the border columns lie: head, tail <= a vector) by the first 2 kVec lanes, an element
// each, then shuffled to the lanes that store those vectors. Every store is a whole aligned 16-byte vector, a warp's
// 32 of them side by side.
// H200, headline x (16 x 64 x 512 x 512 float32), padding 1, torch's fill 231 us: 268 us with a warp per row whose
// lane 0 and last lane loaded their border values inside the store loop (three trips to L2 one after another before
// the row's last store); 241 us now. Storing the border vectors by an element per lane, and the middle ones from
// the row's second vector on, took 362 us: every warp's stores then straddled 16 bytes into the next line. Loading
// the next row's values before this row's stores (rows of 32-63 vectors take up to 4 a warp) held 38-48 registers
// against 30-32 and was slower on those rows (1024 x 128 float32: 170 against 153 us).
template <typename T>
__device__ __forceinline__ void write_cut_rows(const BroadcastArgs& a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const A* cells = static_cast<const A*>(a.cells);  // [segment pairs, B*C]
  uint4* out = static_cast<uint4*>(a.out);          // [B, C, H, W / kVec] contiguous, 16-byte vectors
  const int64_t planes = a.batch * a.channels, rows = planes * a.height;
  const int32_t width = static_cast<int32_t>(a.width), row_vectors = width / kVec;  // a row's index fits 32 bits
  const int lane = threadIdx.x & 31;
  // The column whose value this lane loads: of the row's first vector (lanes < kVec) or its last (lanes kVec to
  // 2 kVec - 1).
  const bool edge_lane = lane < 2 * kVec;
  const int32_t edge_column = lane < kVec ? lane : width - 2 * kVec + lane;
  const int64_t edge_offset = (edge_lane ? segment_of<int32_t>(a.cut_cols, edge_column, width) : 0) * planes;
  const int64_t first_row = ((static_cast<int64_t>(blockIdx.x) * kBlockThreads + threadIdx.x) >> 5) * a.rows_per_warp;
  const int64_t end_row = min(first_row + a.rows_per_warp, rows);
  const bool rows_fit_32_bits = rows < (int64_t{1} << 31);
  for (int64_t row = first_row; row < end_row; ++row) {
    // A 64-bit division is tens of instructions ahead of the row's first store.
    const int64_t plane = rows_fit_32_bits ? divide(static_cast<uint32_t>(row), a.height_divisor) : row / a.height;
    const int64_t row_segment = segment_of<int64_t>(a.cut_rows, row - plane * a.height, a.height);
    const A* row_cells = cells + row_segment * a.cut_cols.segments * planes + plane;  // column segment q at q * planes
    const A middle = __ldg(row_cells + a.cut_cols.head * planes);
    const A edge = edge_lane ? __ldg(row_cells + edge_offset) : A(0);
    // The first and last vectors' elements from the edge lanes, every lane taking part (shuffles are warp-wide):
    // lane 0 keeps the first vector's, the other lanes the last one's (the host leaves the last vector off lane 0).
    T edge_vals[kVec], middle_vals[kVec];
    const T value = from_acc<T>(middle);
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const A first = __shfl_sync(0xffffffffu, edge, k), last = __shfl_sync(0xffffffffu, edge, kVec + k);
      edge_vals[k] = from_acc<T>(lane == 0 ? first : last);
      middle_vals[k] = value;
    }
    uint4 edge_packed, middle_packed;
    memcpy(&edge_packed, edge_vals, sizeof(edge_packed));
    memcpy(&middle_packed, middle_vals, sizeof(middle_packed));
    uint4* row_out = out + row * row_vectors;
    for (int32_t v = lane; v < row_vectors; v += 32) {
      row_out[v] = v == 0 || v == row_vectors - 1 ? edge_packed : middle_packed;
    }
  }
}

}  // namespace
}  // namespace fusedlse
