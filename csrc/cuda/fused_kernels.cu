// The fused forward in one launch, one-shot: no block waits for another.
//   blocks [0, wsum_blocks)          fold weight.sum((2,3)) into wsum, one unit channel group each;
//   blocks [wsum_blocks, grid end)   read one tile of x each (a piece of a row or of a channel group, or a few
//                                    whole short rows) and write its partial sums.
// A block then counts its items against the epilogue units they belong to (a tile of batches x a group of
// channels), one atomic ticket per unit. The block that completes a unit sums the unit's partials in a fixed order
// and computes the unit's share of the GEMM; the block that completes a batch tile's last unit adds the shares in
// unit order, adds the biases and takes the logsumexp. Every sum runs in a fixed order, so the result is bitwise
// reproducible; tickets are reset by the block that consumes them, so nothing is cleared per call.
//
// Only CUDA headers are included: see fused_kernels.h.

#include "fused_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

namespace fusedlse {
namespace {

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

// f(T{}) for the element type that `kind` names (the one switch over dtypes every entry point shares); `fallback`
// for a value outside the enum.
template <typename R, typename F>
R with_element_type(ScalarKind kind, R fallback, F&& f) {
  switch (kind) {
    case ScalarKind::kFloat: return f(float{});
    case ScalarKind::kHalf: return f(__half{});
    case ScalarKind::kBFloat16: return f(__nv_bfloat16{});
    case ScalarKind::kDouble: return f(double{});
  }
  return fallback;
}

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_acc(acc_t<T> v);
template <> __device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <> __device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Sum of the elements packed in one 16-byte vector.
template <typename T> __device__ __forceinline__ acc_t<T> vec_sum(uint4 v);
template <> __device__ __forceinline__ float vec_sum<float>(uint4 v) {
  return (__uint_as_float(v.x) + __uint_as_float(v.y)) + (__uint_as_float(v.z) + __uint_as_float(v.w));
}
template <> __device__ __forceinline__ double vec_sum<double>(uint4 v) {
  const double lo = __hiloint2double(static_cast<int>(v.y), static_cast<int>(v.x));
  const double hi = __hiloint2double(static_cast<int>(v.w), static_cast<int>(v.z));
  return lo + hi;
}
template <typename P, typename F>
__device__ __forceinline__ float sum_pairs(uint4 v, F to_float2) {
  const unsigned words[4] = {v.x, v.y, v.z, v.w};
  float total[2] = {0.f, 0.f};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    P pair;
    memcpy(&pair, &words[i], sizeof(pair));
    const float2 f = to_float2(pair);
    total[i & 1] += f.x + f.y;
  }
  return total[0] + total[1];
}
template <> __device__ __forceinline__ float vec_sum<__half>(uint4 v) {
  return sum_pairs<__half2>(v, [](__half2 p) { return __half22float2(p); });
}
template <> __device__ __forceinline__ float vec_sum<__nv_bfloat16>(uint4 v) {
  return sum_pairs<__nv_bfloat162>(v, [](__nv_bfloat162 p) { return __bfloat1622float2(p); });
}

// The i-th element of a 16-byte vector, as the accumulation type.
template <typename T> __device__ __forceinline__ acc_t<T> vec_elem(const uint4& v, int i) {
  T e;
  memcpy(&e, reinterpret_cast<const char*>(&v) + i * sizeof(T), sizeof(T));
  return to_acc(e);
}

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading x.

// Loads each lane keeps in flight while streaming x: 16 warps per SM x 32 lanes x 8 x 16 bytes = 64 KiB per SM,
// above the ~32 KiB Hopper needs to saturate HBM, with room to spare while blocks start, sync or run an epilogue.
constexpr int kLoadsInFlight = 8;

// One warp's sum of n contiguous elements at p: scalar head up to 16-byte alignment, 16-byte body with
// kLoadsInFlight loads in flight per lane, scalar tail. The result is the same in every lane.
template <typename T>
__device__ __forceinline__ acc_t<T> warp_chunk_sum(const T* p, int64_t n, int lane) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const int64_t misalign = (reinterpret_cast<uintptr_t>(p) & 15) / sizeof(T);
  const int64_t head = imin(misalign ? kVec - misalign : 0, n);
  const int64_t vectors = (n - head) / kVec;
  const int64_t tail_begin = head + vectors * kVec;
  A acc[4] = {A(0), A(0), A(0), A(0)};
  if (lane < head) acc[0] += to_acc(p[lane]);
  if (lane < n - tail_begin) acc[1] += to_acc(p[tail_begin + lane]);
  const uint4* body = reinterpret_cast<const uint4*>(p + head);
  int64_t i = lane;
  for (; i + 32 * (kLoadsInFlight - 1) < vectors; i += 32 * kLoadsInFlight) {
    uint4 v[kLoadsInFlight];
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) v[u] = __ldcs(body + i + 32 * u);
#pragma unroll
    for (int u = 0; u < kLoadsInFlight; ++u) acc[u % 4] += vec_sum<T>(v[u]);
  }
  // Fewer than 32 * kLoadsInFlight vectors are left: one more trip, predicated, rather than a round trip per load.
  uint4 v[kLoadsInFlight];
#pragma unroll
  for (int u = 0; u < kLoadsInFlight; ++u)
    if (i + 32 * u < vectors) v[u] = __ldcs(body + i + 32 * u);
#pragma unroll
  for (int u = 0; u < kLoadsInFlight; ++u)
    if (i + 32 * u < vectors) acc[u % 4] += vec_sum<T>(v[u]);
  return warp_sum((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

// One warp's sums of up to kRowsAtOnce whole rows of n elements, loads of all rows interleaved so that short rows
// still keep several loads in flight. rows[r] is null for rows past the end.
template <typename T, int kRowsAtOnce>
__device__ __forceinline__ void warp_rows_sum(const T* const* rows, int64_t n, int lane, acc_t<T>* sums) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  int64_t head[kRowsAtOnce], vectors[kRowsAtOnce];
  A acc[kRowsAtOnce];
  int64_t most_vectors = 0;
#pragma unroll
  for (int r = 0; r < kRowsAtOnce; ++r) {
    acc[r] = A(0);
    head[r] = 0;
    vectors[r] = 0;
    if (rows[r] == nullptr) continue;
    const int64_t misalign = (reinterpret_cast<uintptr_t>(rows[r]) & 15) / sizeof(T);
    head[r] = imin(misalign ? kVec - misalign : 0, n);
    vectors[r] = (n - head[r]) / kVec;
    most_vectors = imax(most_vectors, vectors[r]);
    const int64_t tail_begin = head[r] + vectors[r] * kVec;
    if (lane < head[r]) acc[r] += to_acc(rows[r][lane]);
    if (lane < n - tail_begin) acc[r] += to_acc(rows[r][tail_begin + lane]);
  }
#pragma unroll 2
  for (int64_t i = lane; i < most_vectors; i += 32) {
    uint4 v[kRowsAtOnce];
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (i < vectors[r]) v[r] = __ldcs(reinterpret_cast<const uint4*>(rows[r] + head[r]) + i);
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (i < vectors[r]) acc[r] += vec_sum<T>(v[r]);
  }
#pragma unroll
  for (int r = 0; r < kRowsAtOnce; ++r) sums[r] = warp_sum(acc[r]);
}


// ---------------------------------------------------------------------------------------------------------------
// Logsumexp, online.

template <typename A> struct Lse {
  A max_value, scaled_sum;  // logsumexp = max_value + log(scaled_sum); scaled_sum == 0 means empty
};

template <typename A> __device__ __forceinline__ void lse_push(Lse<A>& s, A v) {
  if (v > s.max_value) {
    s.scaled_sum = s.scaled_sum * exp(s.max_value - v) + A(1);
    s.max_value = v;
  } else if (v != -INFINITY) {  // NaN lands here and poisons the sum, as it should
    s.scaled_sum += exp(v - s.max_value);
  }
}

template <typename A> __device__ __forceinline__ Lse<A> lse_merge(Lse<A> p, Lse<A> q) {
  if (q.scaled_sum == A(0)) return p;
  if (p.scaled_sum == A(0)) return q;
  const A m = p.max_value > q.max_value ? p.max_value : q.max_value;
  return {m, p.scaled_sum * exp(p.max_value - m) + q.scaled_sum * exp(q.max_value - m)};
}

template <typename A> __device__ __forceinline__ Lse<A> warp_lse(Lse<A> s) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const Lse<A> other{__shfl_xor_sync(0xffffffffu, s.max_value, offset),
                       __shfl_xor_sync(0xffffffffu, s.scaled_sum, offset)};
    s = lse_merge(s, other);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Epilogue units and their tickets.

// How the epilogue cuts [B, C] into units: unit u = (tile, group) covers batches [b0, b0 + nb) and channels
// [c0, c0 + nc).
struct UnitGrid {
  int64_t batch, channels;
  int64_t unit_batches, unit_channels, unit_groups;
};

struct UnitBox {
  int64_t tile, group, b0, nb, c0, nc;
};

__device__ __forceinline__ UnitBox unit_box(const UnitGrid& g, int64_t u) {
  UnitBox box;
  box.tile = u / g.unit_groups;
  box.group = u - box.tile * g.unit_groups;
  box.b0 = box.tile * g.unit_batches;
  box.nb = imin(g.unit_batches, g.batch - box.b0);
  box.c0 = box.group * g.unit_channels;
  box.nc = imin(g.unit_channels, g.channels - box.c0);
  return box;
}

// What the block-wide epilogue reads and writes; T is the type of bias and output.
template <typename T> struct Epilogue {
  using A = acc_t<T>;
  UnitGrid grid;
  int64_t splits;
  const A* partials;   // [B*C*splits]: slot row * splits + split
  A* sums;             // [B, C]: written when splits > 1 (it is `partials` otherwise)
  bool sums_only;
  int64_t c_out;
  const A* wsum;       // [C, C_out]
  const T* conv_bias;  // [C_out] or null
  const T* bias;       // element n at n * bias_stride
  int64_t bias_stride;
  A scale;
  A* zpart;            // [B, unit_groups, C_out]
  int* batch_tickets;  // [tiles]
  T* out;              // [B]
};

// Block-shared memory of the epilogue: a unit's sums, and a buffer for cross-thread sums (also used by the reads).
template <typename A> struct EpilogueShared {
  A* unit_sums;  // kMaxUnitSums values
  A* reduce;     // kReduceBytes
  int* flag;
};
constexpr int kReduceBytes = 8192;  // >= 256 threads x 16 bytes' worth of float accumulators; >= kMaxUnitSums doubles

template <typename T>
__device__ __forceinline__ acc_t<T> logit(const Epilogue<T>& e, int64_t n, acc_t<T> dot) {
  acc_t<T> v = dot * e.scale + to_acc(e.bias[n * e.bias_stride]);
  if (e.conv_bias != nullptr) v += to_acc(e.conv_bias[n]);
  return v;
}

// Four consecutive accumulation-type values at p (count of them valid); one or two 16-byte loads when aligned.
// Through L2 (ld.cg): these values were written by other blocks of this launch.
template <typename A>
__device__ __forceinline__ void load4(const A* p, int64_t valid, A (&v)[4]) {
  if (valid >= 4 && (reinterpret_cast<uintptr_t>(p) & 15) == 0) {
    if constexpr (sizeof(A) == 4) {
      const float4 q = __ldcg(reinterpret_cast<const float4*>(p));
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const double2 lo = __ldcg(reinterpret_cast<const double2*>(p));
      const double2 hi = __ldcg(reinterpret_cast<const double2*>(p) + 1);
      v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = i < valid ? __ldcg(p + i) : A(0);
  }
}

// 1. The unit's row sums, into shared memory (and into `sums` when rows were split). `lanes` threads per row, as
// many as spread the unit's rows over the block in about one pass; each sums its slots in order, then a butterfly.
template <typename T>
__device__ __forceinline__ void unit_row_sums(const Epilogue<T>& e, const UnitBox& box, acc_t<T>* unit_sums) {
  using A = acc_t<T>;
  const int64_t rows = box.nb * box.nc;
  if (e.splits == 1) {
    for (int64_t i = threadIdx.x; i < rows; i += kBlockThreads) {
      const int64_t b = i / box.nc;
      unit_sums[i] = __ldcg(e.partials + (box.b0 + b) * e.grid.channels + box.c0 + (i - b * box.nc));
    }
  } else {
    int lanes = 1;
    while (lanes < 32 && lanes < e.splits && rows * lanes * 2 <= kBlockThreads) lanes *= 2;
    const int64_t rows_per_pass = kBlockThreads / lanes;
    const int sub = threadIdx.x % lanes;
    for (int64_t first = 0; first < rows; first += rows_per_pass) {
      const int64_t i = first + threadIdx.x / lanes;
      int64_t row = 0;
      A acc = A(0);
      if (i < rows) {
        const int64_t b = i / box.nc;
        row = (box.b0 + b) * e.grid.channels + box.c0 + (i - b * box.nc);
        const A* slots = e.partials + row * e.splits;
#pragma unroll 8
        for (int64_t s = sub; s < e.splits; s += lanes) acc += __ldcg(slots + s);
      }
      for (int offset = lanes / 2; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
      if (i < rows && sub == 0) {
        unit_sums[i] = acc;
        e.sums[row] = acc;
      }
    }
  }
  __syncthreads();
}

// 2. The unit's share of the GEMM, zpart[b, group, :] = unit_sums[b, :] @ wsum[c0:c0+nc, :] for its nb batches.
// A thread owns 4 consecutive outputs of every batch and a slice of the unit's channels: when C_out is narrow,
// the channels are cut into up to 256/quads slices, summed afterwards through shared memory in slice order.
template <typename T>
__device__ __forceinline__ void unit_gemm(const Epilogue<T>& e, const UnitBox& box, const acc_t<T>* unit_sums,
                                          acc_t<T>* reduce) {
  using A = acc_t<T>;
  const int64_t quads = (e.c_out + 3) / 4;
  const int64_t slices = quads >= kBlockThreads ? 1 : imax(1, imin(kBlockThreads / quads, box.nc));
  const int64_t quads_per_pass = imin(quads, kBlockThreads / slices);
  const int64_t slice = threadIdx.x / quads_per_pass, quad_in_pass = threadIdx.x - slice * quads_per_pass;
  const int64_t k_begin = box.nc * slice / slices, k_end = box.nc * (slice + 1) / slices;
  A* z = e.zpart + (box.b0 * e.grid.unit_groups + box.group) * e.c_out;  // batch b's row at b * unit_groups * c_out
  const int64_t z_batch_stride = e.grid.unit_groups * e.c_out;
  for (int64_t first_quad = 0; first_quad < quads; first_quad += quads_per_pass) {
    const int64_t n = 4 * (first_quad + quad_in_pass);
    const int64_t valid = slice < slices ? imin(4, e.c_out - n) : 0;
    A dot[kMaxUnitBatches][4] = {};
    if (valid > 0) {
      const A* w = e.wsum + (box.c0 + k_begin) * e.c_out + n;
#pragma unroll 4
      for (int64_t k = k_begin; k < k_end; ++k, w += e.c_out) {
        A v[4];
        load4(w, valid, v);
#pragma unroll
        for (int b = 0; b < kMaxUnitBatches; ++b) {
          if (b < box.nb) {
            const A s = unit_sums[b * box.nc + k];
#pragma unroll
            for (int i = 0; i < 4; ++i) dot[b][i] += s * v[i];
          }
        }
      }
    }
    if (slices == 1) {
#pragma unroll
      for (int b = 0; b < kMaxUnitBatches; ++b)
        if (b < box.nb)
#pragma unroll
          for (int i = 0; i < 4; ++i)
            if (i < valid) z[b * z_batch_stride + n + i] = dot[b][i];
      continue;
    }
    // slices > 1 means quads < 256: this is the only pass.
    const int64_t width = 4 * quads_per_pass;
#pragma unroll
    for (int b = 0; b < kMaxUnitBatches; ++b) {
      if (b >= box.nb) break;
      if (slice < slices) {
#pragma unroll
        for (int i = 0; i < 4; ++i) reduce[slice * width + 4 * quad_in_pass + i] = dot[b][i];
      }
      __syncthreads();
      for (int64_t col = threadIdx.x; col < e.c_out; col += kBlockThreads) {
        A s = A(0);
        for (int64_t q = 0; q < slices; ++q) s += reduce[q * width + col];
        z[b * z_batch_stride + col] = s;
      }
      __syncthreads();
    }
  }
}

// 3. Every batch of the tile: add up the units' shares in unit order, add the biases, logsumexp x 10. A warp per
// batch.
template <typename T>
__device__ __forceinline__ void finish_tile(const Epilogue<T>& e, const UnitBox& box) {
  using A = acc_t<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t b = box.b0 + warp; b < box.b0 + box.nb; b += kWarpsPerBlock) {
    Lse<A> state{-INFINITY, A(0)};
    const A* z = e.zpart + b * e.grid.unit_groups * e.c_out;
    for (int64_t n = 4 * lane; n < e.c_out; n += 128) {
      const int64_t valid = imin(4, e.c_out - n);
      A total[4] = {A(0), A(0), A(0), A(0)};
#pragma unroll 4
      for (int64_t g = 0; g < e.grid.unit_groups; ++g) {
        A v[4];
        load4(z + g * e.c_out + n, valid, v);
#pragma unroll
        for (int i = 0; i < 4; ++i) total[i] += v[i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (i < valid) lse_push(state, logit(e, n + i, total[i]));
    }
    state = warp_lse(state);
    if (lane == 0) e.out[b] = from_acc<T>(A(10) * (state.max_value + log(state.scaled_sum)));
  }
}

// Unit u's epilogue, run by the whole block (every thread calls it) once everything the unit needs is visible.
// The block that completes a tile's last unit finishes the tile.
template <typename T>
__device__ __forceinline__ void unit_epilogue(const Epilogue<T>& e, int64_t u, EpilogueShared<acc_t<T>> shared) {
  const UnitBox box = unit_box(e.grid, u);
  unit_row_sums(e, box, shared.unit_sums);
  if (e.sums_only) return;
  unit_gemm(e, box, shared.unit_sums, shared.reduce);
  if (e.grid.unit_groups > 1) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      const bool last = atomicAdd(e.batch_tickets + box.tile, 1) == e.grid.unit_groups - 1;
      if (last) {
        e.batch_tickets[box.tile] = 0;
        __threadfence();
      }
      *shared.flag = last;
    }
    __syncthreads();
    if (!*shared.flag) return;
  } else {
    __syncthreads();  // zpart written by other threads of this block
  }
  finish_tile(e, box);
  __syncthreads();  // shared memory is free for the next unit
}

// ---------------------------------------------------------------------------------------------------------------
// Reading x: one tile per block.

// Split tile of a row: positions [split * chunk, ...) of one row, an eighth per warp; one partial.
template <typename T>
__device__ __forceinline__ void read_row_item(const FusedArgs& a, int64_t item, acc_t<T>* reduce) {
  using A = acc_t<T>;
  constexpr int64_t kGrain = 16 / sizeof(T);  // pieces start 16 bytes apart from the row's start
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t splits = a.plan.splits;
  const int64_t row = item / splits, split = item - row * splits;
  const int64_t begin = split * a.plan.chunk, end = imin(begin + a.plan.chunk, a.plane);
  const int64_t piece = ((end - begin + kWarpsPerBlock - 1) / kWarpsPerBlock + kGrain - 1) / kGrain * kGrain;
  const int64_t p0 = imin(begin + warp * piece, end), p1 = imin(p0 + piece, end);
  const int64_t b = row / a.channels;
  const T* x = static_cast<const T*>(a.x) + b * a.stride_b + (row - b * a.channels) * a.stride_c;
  const A s = warp_chunk_sum(x + p0, p1 - p0, lane);
  if (lane == 0) reduce[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    A total = A(0);
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) total += reduce[w];
    static_cast<A*>(a.partials)[row * splits + split] = total;
  }
}

// Whole-row tile: rows_per_warp rows per warp, their loads interleaved; the sums are final.
template <typename T>
__device__ __forceinline__ void read_whole_rows(const FusedArgs& a, int64_t first_row, int64_t end_row) {
  using A = acc_t<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t k = a.plan.rows_per_warp;
  const int64_t warp_first = first_row + warp * k, warp_end = imin(warp_first + k, end_row);
  for (int64_t row0 = warp_first; row0 < warp_end; row0 += kRowsAtOnce) {
    const T* ptrs[kRowsAtOnce];
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r) {
      const int64_t row = row0 + r;
      ptrs[r] = nullptr;
      if (row < warp_end) {
        const int64_t b = row / a.channels;
        ptrs[r] = static_cast<const T*>(a.x) + b * a.stride_b + (row - b * a.channels) * a.stride_c;
      }
    }
    A s[kRowsAtOnce];
    warp_rows_sum<T, kRowsAtOnce>(ptrs, a.plane, lane, s);
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < kRowsAtOnce; ++r)
        if (ptrs[r] != nullptr) static_cast<A*>(a.partials)[row0 + r] = s[r];
    }
  }
}

// Adds kVec channels' values from the 16 bytes (kVec > 1) or the one element (kVec == 1) at p.
template <typename T, int kVec>
__device__ __forceinline__ void accumulate_position(const T* p, acc_t<T> (&acc)[kVec]) {
  if constexpr (kVec > 1) {
    const uint4 v = __ldcs(reinterpret_cast<const uint4*>(p));
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += vec_elem<T>(v, k);
  } else {
    acc[0] += to_acc(__ldcs(p));
  }
}

// Channels-last split tile: positions [split * chunk, ...) of one channel group of one batch, an eighth per warp.
// A warp's lanes form a [position, channel] grid with kVec channels per lane; the block adds its lanes' values per
// channel in a fixed order and writes one partial per channel.
template <typename T, int kVec>
__device__ __forceinline__ void read_channels_last_item(const FusedArgs& a, int64_t item, acc_t<T>* reduce) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t group = item / plan.splits, split = item - group * plan.splits;
  const int64_t b = group / plan.groups_per_batch;
  const int64_t c_begin = (group - b * plan.groups_per_batch) * plan.group_channels;
  const int64_t width = imin(plan.group_channels, a.channels - c_begin);
  const int channel_lanes = static_cast<int>(plan.group_channels / kVec);
  const int position_lanes = 32 / channel_lanes;
  const int channel_lane = lane % channel_lanes, position_lane = lane / channel_lanes;
  const int64_t begin = split * plan.chunk, end = imin(begin + plan.chunk, a.plane);
  const int64_t piece = (end - begin + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t p0 = imin(begin + warp * piece, end), p1 = imin(p0 + piece, end);
  A acc[kVec];
#pragma unroll
  for (int k = 0; k < kVec; ++k) acc[k] = A(0);
  const int64_t c = channel_lane * kVec;
  const bool active = position_lane < position_lanes;
  if (active && c < width && p0 + position_lane < p1) {
    const int64_t step = position_lanes * a.stride_p;
    const T* p = static_cast<const T*>(a.x) + b * a.stride_b + c_begin + c + (p0 + position_lane) * a.stride_p;
    int64_t left = (p1 - p0 - position_lane + position_lanes - 1) / position_lanes;
    // One trip: the next `count` (<= kLoadsInFlight) positions' loads issued together, in pairs of partial sums.
    auto trip = [&](int64_t count) {
      A part[kLoadsInFlight / 2][kVec];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight / 2; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) part[u][k] = A(0);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u)
        if (u < count) accumulate_position<T, kVec>(p + u * step, part[u / 2]);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight / 2; ++u)
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc[k] += part[u][k];
    };
    for (; left >= kLoadsInFlight; left -= kLoadsInFlight, p += kLoadsInFlight * step) trip(kLoadsInFlight);
    trip(left);  // fewer than kLoadsInFlight positions left: predicated, not a round trip per load
  }
  if (active) {
#pragma unroll
    for (int k = 0; k < kVec; ++k) reduce[(warp * 32 + lane) * kVec + k] = acc[k];
  }
  __syncthreads();
  A* partials = static_cast<A*>(a.partials);
  for (int64_t t = threadIdx.x; t < width; t += kBlockThreads) {
    A s = A(0);
    for (int w = 0; w < kWarpsPerBlock; ++w)
      for (int l = 0; l < position_lanes; ++l) s += reduce[(w * 32 + l * channel_lanes) * kVec + t];
    partials[(b * a.channels + c_begin + t) * plan.splits + split] = s;
  }
}

// Tickets unit `box` waits for: one per item of its rows, plus one per weight-fold piece of its channel group.
__device__ __forceinline__ int unit_expected(const FusedArgs& a, const UnitBox& box) {
  const LaunchPlan& p = a.plan;
  const int64_t groups = (box.nc + p.group_channels - 1) / p.group_channels;
  return static_cast<int>(box.nb * groups * p.splits + p.fold_pieces);
}

// `count` more items of unit u are visible; if that completes it, reset its ticket and list it in shared `done`.
__device__ __forceinline__ void arrive(const FusedArgs& a, const UnitGrid& grid, int64_t u, int count,
                                       int64_t* done, int* done_count) {
  const int expected = unit_expected(a, unit_box(grid, u));
  if (atomicAdd(a.unit_tickets + u, count) + count == expected) {
    a.unit_tickets[u] = 0;
    done[atomicAdd(done_count, 1)] = u;  // several threads of a weight-fold block may complete units at once
  }
}

// Thread 0, after the block's tile is written: its items, run by run of equal unit, to their tickets.
template <XLayout kLayout>
__device__ __forceinline__ void arrive_tile(const FusedArgs& a, const UnitGrid& grid, int64_t tile, int64_t* done,
                                            int* done_count) {
  const LaunchPlan& p = a.plan;
  // Batch and channel indices fit in 32 bits (plan_launch checks): cheap divisions.
  const uint32_t unit_batches = static_cast<uint32_t>(p.unit_batches);
  const uint32_t unit_channels = static_cast<uint32_t>(p.unit_channels);
  const uint32_t channels = static_cast<uint32_t>(a.channels);
  if (kLayout == XLayout::kRows && p.rows_per_warp > 0) {
    const int64_t first = tile * kWarpsPerBlock * p.rows_per_warp;
    const int64_t end = imin(first + kWarpsPerBlock * p.rows_per_warp, a.batch * a.channels);
    uint32_t b = static_cast<uint32_t>(first / a.channels);
    uint32_t c = static_cast<uint32_t>(first - static_cast<int64_t>(b) * a.channels);
    for (int64_t row = first; row < end;) {
      const uint32_t g = c / unit_channels;
      const uint32_t c_stop = min((g + 1) * unit_channels, channels);
      const int count = static_cast<int>(imin(c_stop - c, end - row));
      arrive(a, grid, static_cast<int64_t>(b / unit_batches) * p.unit_groups + g, count, done, done_count);
      row += count;
      c += count;
      if (c == channels) c = 0, ++b;
    }
  } else {
    const int64_t group = tile / p.splits;
    const int64_t b = group / p.groups_per_batch;
    const uint32_t c = static_cast<uint32_t>((group - b * p.groups_per_batch) * p.group_channels);
    arrive(a, grid, static_cast<int64_t>(static_cast<uint32_t>(b) / unit_batches) * p.unit_groups + c / unit_channels,
           1, done, done_count);
  }
}

// weight [C, C_out, kernel_area] -> piece `piece` (kFoldValues values) of the wsum rows of unit group g; then each
// tile's unit (tile, g) is told, and the units this completes run their epilogues.
template <typename T>
__device__ __forceinline__ void fold_weight_piece(const FusedArgs& a, const Epilogue<T>& e, int64_t g, int64_t piece,
                                                  EpilogueShared<acc_t<T>> shared, int64_t* done, int* done_count) {
  using A = acc_t<T>;
  const T* weight = static_cast<const T*>(a.weight);
  A* wsum = static_cast<A*>(a.wsum);
  const int64_t group_values = imin(a.plan.unit_channels, a.channels - g * a.plan.unit_channels) * a.c_out;
  const int64_t first = g * a.plan.unit_channels * a.c_out + piece * kFoldValues;
  const int64_t count = imin(kFoldValues, group_values - piece * kFoldValues);  // <= 0 for a spare piece
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < count; i += kBlockThreads) {
    const T* taps = weight + (first + i) * a.kernel_area;
    A s = A(0);
    for (int64_t q = 0; q < a.kernel_area; ++q) s += to_acc(taps[q]);
    wsum[first + i] = s;
  }
  __threadfence();
  for (int64_t t0 = 0; t0 < a.plan.tiles; t0 += kBlockThreads) {
    __syncthreads();  // wsum is complete (first round); the previous round's epilogues are done
    if (threadIdx.x == 0) *done_count = 0;
    __syncthreads();
    const int64_t tile = t0 + threadIdx.x;
    if (tile < a.plan.tiles) {
      arrive(a, e.grid, tile * a.plan.unit_groups + g, 1, done, done_count);
    }
    __syncthreads();
    const int completed = *done_count;
    if (completed > 0) __threadfence();
    for (int i = 0; i < completed; ++i) unit_epilogue(e, done[i], shared);
  }
}

template <typename T>
__device__ __forceinline__ Epilogue<T> fused_epilogue_args(const FusedArgs& a) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  Epilogue<T> e;
  e.grid = UnitGrid{a.batch, a.channels, plan.unit_batches, plan.unit_channels, plan.unit_groups};
  e.splits = plan.splits;
  e.partials = static_cast<const A*>(a.partials);
  e.sums = static_cast<A*>(a.sums);
  e.sums_only = a.mode == Mode::kSumsOnly;
  e.c_out = a.c_out;
  e.wsum = static_cast<const A*>(a.wsum);
  e.conv_bias = static_cast<const T*>(a.conv_bias);
  e.bias = static_cast<const T*>(a.bias);
  e.bias_stride = a.bias_stride;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<T*>(a.out);
  return e;
}

template <typename T, XLayout kLayout>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm) fused_kernel(const __grid_constant__ FusedArgs a) {
  using A = acc_t<T>;
  __shared__ __align__(16) unsigned char reduce_bytes[kReduceBytes];
  __shared__ A unit_sums[kMaxUnitSums];
  __shared__ int64_t done[kBlockThreads];  // units completed by this block
  __shared__ int done_count, flag;
  A* reduce = reinterpret_cast<A*>(reduce_bytes);
  const EpilogueShared<A> shared{unit_sums, reduce, &flag};
  const Epilogue<T> e = fused_epilogue_args<T>(a);
  if (blockIdx.x < a.plan.wsum_blocks) {
    const int64_t g = blockIdx.x / a.plan.fold_pieces;
    fold_weight_piece<T>(a, e, g, blockIdx.x - g * a.plan.fold_pieces, shared, done, &done_count);
    return;
  }
  const int64_t tile = static_cast<int64_t>(blockIdx.x) - a.plan.wsum_blocks;
  if constexpr (kLayout == XLayout::kRows) {
    if (a.plan.rows_per_warp > 0) {
      const int64_t first = tile * kWarpsPerBlock * a.plan.rows_per_warp;
      read_whole_rows<T>(a, first, imin(first + kWarpsPerBlock * a.plan.rows_per_warp, a.batch * a.channels));
    } else {
      read_row_item<T>(a, tile, reduce);
    }
  } else {
    constexpr int kVec = 16 / sizeof(T);
    if (a.plan.vec == kVec) {
      read_channels_last_item<T, kVec>(a, tile, reduce);
    } else {
      read_channels_last_item<T, 1>(a, tile, reduce);
    }
  }
  if (!a.plan.tickets) return;
  // Release this block's partials, then count them; the acquire side is the fence after a completed ticket.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    done_count = 0;
    arrive_tile<kLayout>(a, e.grid, tile, done, &done_count);
    if (done_count > 0) __threadfence();
  }
  __syncthreads();
  const int completed = done_count;
  for (int i = 0; i < completed; ++i) unit_epilogue(e, done[i], shared);
}

// gemm_lse: block u runs unit u's epilogue from ready-made sums (one slot per row).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) gemm_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  __shared__ __align__(16) unsigned char reduce_bytes[kReduceBytes];
  __shared__ A unit_sums[kMaxUnitSums];
  __shared__ int flag;
  Epilogue<A> e;
  e.grid = UnitGrid{a.batch, a.channels, a.unit_batches, a.unit_channels, a.unit_groups};
  e.splits = 1;
  e.partials = static_cast<const A*>(a.sums);
  e.sums = nullptr;
  e.sums_only = false;
  e.c_out = a.c_out;
  e.wsum = static_cast<const A*>(a.weight_sum);
  e.conv_bias = nullptr;
  e.bias = static_cast<const A*>(a.total_bias);
  e.bias_stride = 1;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<A*>(a.out);
  unit_epilogue(e, blockIdx.x, EpilogueShared<A>{unit_sums, reinterpret_cast<A*>(reduce_bytes), &flag});
}

template <typename T>
cudaError_t launch_fused_typed(const FusedArgs& a, cudaStream_t stream) {
  const int64_t blocks = a.plan.wsum_blocks + a.plan.read_blocks;
  if (a.layout == XLayout::kRows) {
    fused_kernel<T, XLayout::kRows><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(a);
  } else {
    fused_kernel<T, XLayout::kChannelsLast><<<static_cast<unsigned>(blocks), kBlockThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

template <typename T>
int blocks_per_sm_typed(XLayout layout) {
  int blocks = 0;
  cudaError_t status = layout == XLayout::kRows
      ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fused_kernel<T, XLayout::kRows>, kBlockThreads, 0)
      : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fused_kernel<T, XLayout::kChannelsLast>,
                                                      kBlockThreads, 0);
  return status == cudaSuccess && blocks > 0 ? blocks : 1;
}


// ---------------------------------------------------------------------------------------------------------------
// broadcast_hw: a pure write, so 16-byte streaming stores, several per thread in flight, over a grid sized to fill
// the device. I is the index type: 32-bit when every element index fits (integer division is then several times
// cheaper, and a division per vector must stay below the store rate).

template <typename T, typename I, bool kChannelsLast>
__global__ void __launch_bounds__(kBlockThreads) broadcast_hw_kernel(const __grid_constant__ BroadcastArgs a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const A* rows = static_cast<const A*>(a.rows);  // [B, C]
  T* out = static_cast<T*>(a.out);                // [B, C, H, W] in the layout kChannelsLast names
  const I channels = static_cast<I>(a.channels), plane = static_cast<I>(a.plane);
  const I total = static_cast<I>(a.batch) * channels * plane;
  const I vectors = total / kVec;
  // rows index of output element e.
  auto row_of = [&](I e) -> I {
    if constexpr (kChannelsLast) {
      const I q = e / channels;
      return (q / plane) * channels + (e - q * channels);
    } else {
      return e / plane;
    }
  };
  // The kVec output elements from e0 on, packed. One division per vector unless the vector crosses a row
  // (contiguous) or a pixel's channels (channels-last), where each element finds its own row.
  auto pack = [&](I e0) -> uint4 {
    T vals[kVec];
    if constexpr (kChannelsLast) {
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
      if (i < vectors) __stcs(reinterpret_cast<uint4*>(out) + i, v[u]);
    }
  }
  if (blockIdx.x == 0) {  // the last total % kVec elements
    for (I e = vectors * kVec + threadIdx.x; e < total; e += kBlockThreads) out[e] = from_acc<T>(rows[row_of(e)]);
  }
}

template <typename T, typename I>
auto broadcast_kernel_for(bool channels_last) {
  return channels_last ? broadcast_hw_kernel<T, I, true> : broadcast_hw_kernel<T, I, false>;
}

// 32-bit indices while every index the kernel forms (up to total + one grid step of elements) stays below 2^32.
bool broadcast_fits_32_bits(const BroadcastArgs& a) {
  const int64_t total = a.batch * a.channels * a.plane;
  return total < (int64_t{1} << 31) && a.blocks * kBlockThreads * kBroadcastVectorsPerThread * 16 < (int64_t{1} << 31);
}

template <typename T>
cudaError_t launch_broadcast_typed(const BroadcastArgs& a, cudaStream_t stream) {
  const auto kernel = broadcast_fits_32_bits(a) ? broadcast_kernel_for<T, uint32_t>(a.channels_last)
                                                : broadcast_kernel_for<T, uint64_t>(a.channels_last);
  kernel<<<static_cast<unsigned>(a.blocks), kBlockThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

template <typename T>
int broadcast_blocks_per_sm_typed() {
  int blocks = 0;
  const cudaError_t status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &blocks, broadcast_hw_kernel<T, uint64_t, true>, kBlockThreads, 0);
  return status == cudaSuccess && blocks > 0 ? blocks : 1;
}

}  // namespace

int broadcast_blocks_per_sm(ScalarKind kind) {
  return with_element_type(kind, 1, [](auto t) { return broadcast_blocks_per_sm_typed<decltype(t)>(); });
}

cudaError_t launch_broadcast_hw(const BroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_broadcast_typed<decltype(t)>(args, stream); });
}

int fused_blocks_per_sm(ScalarKind kind, XLayout layout) {
  return with_element_type(kind, 1, [&](auto t) { return blocks_per_sm_typed<decltype(t)>(layout); });
}

cudaError_t launch_fused(const FusedArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_fused_typed<decltype(t)>(args, stream); });
}

cudaError_t launch_gemm_lse(const GemmLseArgs& args, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(args.tiles * args.unit_groups);
  if (args.is_double) {
    gemm_lse_kernel<double><<<blocks, kBlockThreads, 0, stream>>>(args);
  } else {
    gemm_lse_kernel<float><<<blocks, kBlockThreads, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

}  // namespace fusedlse
