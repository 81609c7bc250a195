// The fused forward in one launch, one-shot: no block waits for another.
//   blocks [0, wsum_blocks)          fold weight.sum((2,3)) into wsum, one unit channel group each;
//   blocks [wsum_blocks, grid end)   read one tile of x each (a piece of a row or of a channel group, or a few
//                                    whole short rows) and write its partial sums.
// A block then counts its items against the epilogue units they belong to (a tile of batches x a group of
// channels), one atomic ticket per unit. The block that completes a unit sums the unit's partials in a fixed order
// and computes the unit's share of the GEMM; the block that completes a batch tile's last unit adds the shares in
// unit order, adds the biases and takes the logsumexp. Every sum runs in a fixed order, so the result is bitwise
// reproducible. The tickets are the launch's own, zeroed by the host just before it (fusedlse_cuda.cpp).
// For small x (plan.self_contained), each block instead reads whole batches, folds W.sum from the weight itself and
// finishes them alone: no fold blocks, no tickets.
//
// Only CUDA headers are included: see fused_kernels.h.

#include "fused_kernels.h"
#include "device_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>

namespace fusedlse {
namespace {

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

// One value of W.sum((2,3)): the sum of its kernel_area taps.
template <typename T>
__device__ __forceinline__ acc_t<T> tap_sum(const T* taps, int64_t kernel_area) {
  acc_t<T> s = acc_t<T>(0);
  for (int64_t q = 0; q < kernel_area; ++q) s += to_acc(taps[q]);
  return s;
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
// Epilogue units and their tickets.

// Adds `count` to a ticket, acquire-release at device scope, and returns the old count. Called after a
// __syncthreads(), the release publishes the writes of the whole block before it (a release is cumulative over what
// the barrier ordered before it); when the add completes a count, the acquire makes the writes that every other
// block published visible to this block after the __syncthreads() that follows. One ordered atomic instead of a
// sequentially consistent __threadfence() in every thread: under a full load of reads, that fence held each
// reading block for about 3 us (H100, globaltimer trace).
__device__ __forceinline__ int ticket_add(int* ticket, int count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  int old;
  asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], %2;" : "=r"(old) : "l"(ticket), "r"(count) : "memory");
  return old;
#else
  __threadfence();
  const int old = atomicAdd(ticket, count);
  __threadfence();
  return old;
#endif
}

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
  const A* wsum;       // [C, wsum_stride], or null: then W.sum is folded from `weight` as the GEMM goes
  int64_t wsum_stride; // C_out rounded up to whole 16-byte pieces
  const T* weight;     // [C, C_out, kernel_area]
  int64_t kernel_area;
  const T* conv_bias;  // [C_out] or null
  const T* bias;       // element n at n * bias_stride
  int64_t bias_stride;
  A scale;
  A* zpart;            // [B, unit_groups, C_out]
  int* batch_tickets;  // [tiles]
  T* out;              // [B]
};

// Block-shared memory of the epilogue: a unit's sums, and a buffer that stages W.sum for the GEMM and holds
// cross-thread sums (also used by the reads).
template <typename A> struct EpilogueShared {
  A* unit_sums;  // kMaxUnitSums values
  A* stage;      // kStageBytes
  int* flag;
};

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

// A unit's sums in shared memory: [channel][batch], the batches padded to a multiple of four (zeros), so that the
// GEMM reads four batches' sums of a channel with one vector load.
__device__ __forceinline__ int64_t unit_sum_stride(int64_t nb) { return (nb + 3) & ~int64_t{3}; }

template <typename A>
__device__ __forceinline__ void clear_sum_padding(const UnitBox& box, A* unit_sums) {
  const int64_t stride = unit_sum_stride(box.nb), pad = stride - box.nb;
  for (int64_t i = threadIdx.x; i < box.nc * pad; i += kBlockThreads) {
    const int64_t k = i / pad;
    unit_sums[k * stride + box.nb + (i - k * pad)] = A(0);
  }
}

// 1. The unit's row sums, into shared memory (and into `sums` when rows were split). `lanes` threads per row, as
// many as spread the unit's rows over the block in about one pass; each sums its slots in order, then a butterfly.
template <typename T>
__device__ __forceinline__ void unit_row_sums(const Epilogue<T>& e, const UnitBox& box, acc_t<T>* unit_sums) {
  using A = acc_t<T>;
  const int64_t rows = box.nb * box.nc, stride = unit_sum_stride(box.nb);
  clear_sum_padding(box, unit_sums);
  if (e.splits == 1) {
    for (int64_t i = threadIdx.x; i < rows; i += kBlockThreads) {
      const int64_t b = i / box.nc, k = i - b * box.nc;
      unit_sums[k * stride + b] = __ldcg(e.partials + (box.b0 + b) * e.grid.channels + box.c0 + k);
    }
  } else {
    int lanes = 1;
    while (lanes < 32 && lanes < e.splits && rows * lanes * 2 <= kBlockThreads) lanes *= 2;
    const int64_t rows_per_pass = kBlockThreads / lanes;
    const int sub = threadIdx.x % lanes;
    for (int64_t first = 0; first < rows; first += rows_per_pass) {
      const int64_t i = first + threadIdx.x / lanes;
      const int64_t b = i / box.nc, k = i - b * box.nc;
      const int64_t row = (box.b0 + b) * e.grid.channels + box.c0 + k;
      A acc = A(0);
      if (i < rows) {
        const A* slots = e.partials + row * e.splits;
#pragma unroll 8
        for (int64_t s = sub; s < e.splits; s += lanes) acc += __ldcg(slots + s);
      }
      for (int offset = lanes / 2; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
      if (i < rows && sub == 0) {
        unit_sums[k * stride + b] = acc;
        e.sums[row] = acc;
      }
    }
  }
  __syncthreads();
}

// Four consecutive accumulation-type values of shared memory at p (16-byte aligned).
template <typename A>
__device__ __forceinline__ void load4_shared(const A* p, A (&v)[4]) {
  if constexpr (sizeof(A) == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    const double2 lo = reinterpret_cast<const double2*>(p)[0], hi = reinterpret_cast<const double2*>(p)[1];
    v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
  }
}

// The end of both GEMMs: a thread's accumulators for column n (one per batch of the unit) go to zpart; with several
// channel slices they are first added up through shared memory, in slice order, four batches at a time (slices > 1
// means cols == C_out < 256: there is one column pass, and n is the thread's column).
template <typename T>
__device__ __forceinline__ void store_unit_share(const Epilogue<T>& e, const UnitBox& box, int64_t n, int64_t cols,
                                                 int64_t slices, int64_t slice, bool active,
                                                 const acc_t<T> (&dot)[kMaxUnitBatches], acc_t<T>* reduce) {
  using A = acc_t<T>;
  constexpr int kQuads = kMaxUnitBatches / 4;
  A* z = e.zpart + (box.b0 * e.grid.unit_groups + box.group) * e.c_out;  // batch b's row at b * unit_groups * c_out
  const int64_t z_batch_stride = e.grid.unit_groups * e.c_out;
  if (slices == 1) {
    if (active) {
#pragma unroll
      for (int b = 0; b < kMaxUnitBatches; ++b)
        if (b < box.nb) z[b * z_batch_stride + n] = dot[b];
    }
    return;
  }
  const int64_t col = n;  // the only pass starts at column 0
#pragma unroll
  for (int q = 0; q < kQuads; ++q) {
    if (4 * q >= box.nb) continue;  // block-uniform
    if (slice < slices) {
#pragma unroll
      for (int i = 0; i < 4; ++i) reduce[(slice * 4 + i) * cols + col] = dot[4 * q + i];
    }
    __syncthreads();
    for (int64_t t = threadIdx.x; t < 4 * cols; t += kBlockThreads) {
      const int64_t i = t / cols, c = t - i * cols;
      if (4 * q + i < box.nb) {
        A s = A(0);
        for (int64_t sl = 0; sl < slices; ++sl) s += reduce[(sl * 4 + i) * cols + c];
        z[(4 * q + i) * z_batch_stride + c] = s;
      }
    }
    __syncthreads();
  }
}

// How a GEMM of a unit spreads over the block: a thread owns one output column for every batch of the unit, so W.sum
// is read once per unit whatever nb is. When C_out is narrow, the unit's channels are dealt out to up to 256/C_out
// slices of threads.
struct GemmLayout {
  int64_t cols, slices, slice, col;
};

__device__ __forceinline__ GemmLayout gemm_layout(int64_t c_out, const UnitBox& box) {
  GemmLayout l;
  l.cols = imin(c_out, kBlockThreads);
  l.slices = imax(1, imin(kBlockThreads / l.cols, box.nc));
  l.slice = threadIdx.x / l.cols;
  l.col = threadIdx.x - l.slice * l.cols;
  return l;
}

// dot[b] += W.sum[c, n] * sums[b, c] for the unit's nb batches; `sums` is channel c's row of the unit's sums in
// shared memory, four batches per load.
template <typename A>
__device__ __forceinline__ void add_channel(A (&dot)[kMaxUnitBatches], const A* sums, int64_t nb, A weight_sum) {
#pragma unroll
  for (int q = 0; q < kMaxUnitBatches / 4; ++q) {
    if (4 * q < nb) {
      A v[4];
      load4_shared(sums + 4 * q, v);
#pragma unroll
      for (int i = 0; i < 4; ++i) dot[4 * q + i] += v[i] * weight_sum;
    }
  }
}

// W.sum values each thread of the tap-folding GEMM folds before using any (16 spilled at 128 registers).
constexpr int kGemmLoads = 8;

// 2a. The unit's share of the GEMM, zpart[b, group, :] = unit_sums[b, :] @ W.sum[c0:c0+nc, :], W.sum folded here
// from the weight's taps (self-contained tiles, whose weight is small).
template <typename T>
__device__ __forceinline__ void unit_gemm_folding_taps(const Epilogue<T>& e, const UnitBox& box,
                                                       const acc_t<T>* unit_sums, acc_t<T>* reduce) {
  using A = acc_t<T>;
  const int64_t stride = unit_sum_stride(box.nb);
  const GemmLayout l = gemm_layout(e.c_out, box);
  const int64_t k_begin = box.nc * l.slice / l.slices, k_end = box.nc * (l.slice + 1) / l.slices;
  for (int64_t n0 = 0; n0 < e.c_out; n0 += l.cols) {
    const int64_t n = n0 + l.col;
    const bool active = l.slice < l.slices && n < e.c_out;
    A dot[kMaxUnitBatches] = {};
    if (active) {
      for (int64_t k0 = k_begin; k0 < k_end; k0 += kGemmLoads) {
        A w[kGemmLoads];
#pragma unroll
        for (int j = 0; j < kGemmLoads; ++j)
          w[j] = k0 + j < k_end ? tap_sum(e.weight + ((box.c0 + k0 + j) * e.c_out + n) * e.kernel_area, e.kernel_area)
                                : A(0);
#pragma unroll
        for (int j = 0; j < kGemmLoads; ++j)
          if (k0 + j < k_end) add_channel(dot, unit_sums + (k0 + j) * stride, box.nb, w[j]);
      }
    }
    store_unit_share(e, box, n, l.cols, l.slices, l.slice, active, dot, reduce);
  }
}

// 16-byte copies global -> shared that hold no registers while in flight (cp.async, sm_80 and newer), through L2
// only: W.sum was written by other blocks of this launch.
__device__ __forceinline__ void copy_async_16(void* shared_dst, const void* global_src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(global_src) : "memory");
#else
  *static_cast<uint4*>(shared_dst) = __ldcg(static_cast<const uint4*>(global_src));
#endif
}

__device__ __forceinline__ void copy_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// A chunk of W.sum staged in shared memory: rows [k0, k0 + rows) of the unit's channels, columns [n0, n0 + width),
// each row padded to whole 16-byte pieces and `row_pitch` values apart.
struct StageChunk {
  int64_t n0, k0, width, rows, row_pitch;
};

template <typename A>
__device__ __forceinline__ StageChunk stage_chunk(const UnitBox& box, int64_t c_out, int64_t cols, int64_t n0,
                                                  int64_t k0) {
  constexpr int64_t kPiece = 16 / sizeof(A);
  StageChunk c;
  c.n0 = n0;
  c.k0 = k0;
  c.width = imin(cols, c_out - n0);
  c.row_pitch = (cols + kPiece - 1) / kPiece * kPiece;
  c.rows = imin(static_cast<int64_t>(kStageBytes / sizeof(A)) / c.row_pitch, box.nc - k0);
  return c;
}

// Issues the chunk's copies (every thread of the block). W.sum rows are wsum_stride values apart, a whole number of
// 16-byte pieces from a 16-byte aligned start (the host pads them), so a row's last piece stays inside its padding.
template <typename T>
__device__ __forceinline__ void stage_issue(const Epilogue<T>& e, const UnitBox& box, const StageChunk& c,
                                            acc_t<T>* stage) {
  using A = acc_t<T>;
  constexpr int64_t kPiece = 16 / sizeof(A);
  const uint32_t row_pieces = static_cast<uint32_t>((c.width + kPiece - 1) / kPiece);
  const uint32_t pieces = static_cast<uint32_t>(c.rows) * row_pieces;
  const A* src = e.wsum + (box.c0 + c.k0) * e.wsum_stride + c.n0;
  for (uint32_t i = threadIdx.x; i < pieces; i += kBlockThreads) {
    const uint32_t r = i / row_pieces, p = i - r * row_pieces;
    copy_async_16(stage + r * c.row_pitch + p * kPiece, src + r * e.wsum_stride + p * kPiece);
  }
}

// 2b. The unit's share of the GEMM, zpart[b, group, :] = unit_sums[b, :] @ wsum[c0:c0+nc, :], wsum written earlier in
// the launch. Its rows come through shared memory in chunks of up to kStageBytes, copied with every piece in flight
// at once, so a unit costs one round trip to L2 per chunk rather than one per few channels. The first chunk was
// issued by the caller. In a chunk, slice s takes rows s, s + slices, ...: a fixed order.
template <typename T>
__device__ __forceinline__ void unit_gemm_staged(const Epilogue<T>& e, const UnitBox& box, const acc_t<T>* unit_sums,
                                                 acc_t<T>* stage) {
  using A = acc_t<T>;
  const int64_t stride = unit_sum_stride(box.nb);
  const GemmLayout l = gemm_layout(e.c_out, box);
  for (int64_t n0 = 0; n0 < e.c_out; n0 += l.cols) {
    const int64_t n = n0 + l.col;
    const bool active = l.slice < l.slices && n < e.c_out;
    A dot[kMaxUnitBatches] = {};
    for (int64_t k0 = 0; k0 < box.nc;) {
      const StageChunk c = stage_chunk<A>(box, e.c_out, l.cols, n0, k0);
      if (n0 != 0 || k0 != 0) stage_issue(e, box, c, stage);
      copy_async_wait_all();
      __syncthreads();
      if (active) {
        for (int64_t r = l.slice; r < c.rows; r += l.slices)
          add_channel(dot, unit_sums + (c.k0 + r) * stride, box.nb, stage[r * c.row_pitch + l.col]);
      }
      __syncthreads();  // the stage is free for the next chunk (or for the slices' sums, which share it)
      k0 += c.rows;
    }
    store_unit_share(e, box, n, l.cols, l.slices, l.slice, active, dot, stage);
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
// sums_in_shared: the unit's sums are already in shared.unit_sums (a self-contained tile).
template <typename T>
__device__ __forceinline__ void unit_epilogue(const Epilogue<T>& e, int64_t u, EpilogueShared<acc_t<T>> shared,
                                              bool sums_in_shared = false) {
  using A = acc_t<T>;
  const UnitBox box = unit_box(e.grid, u);
  const bool staged = !e.sums_only && e.wsum != nullptr;
  // The first W.sum chunk's copies fly while the row sums are gathered: one round trip to L2 for both.
  if (staged) stage_issue(e, box, stage_chunk<A>(box, e.c_out, gemm_layout(e.c_out, box).cols, 0, 0), shared.stage);
  if (!sums_in_shared) unit_row_sums(e, box, shared.unit_sums);
  if (e.sums_only) return;
  if (staged) {
    unit_gemm_staged(e, box, shared.unit_sums, shared.stage);
  } else {
    unit_gemm_folding_taps(e, box, shared.unit_sums, shared.stage);
  }
  if (e.grid.unit_groups > 1) {
    __syncthreads();  // the block's zpart writes, released by the ticket add
    if (threadIdx.x == 0) *shared.flag = ticket_add(e.batch_tickets + box.tile, 1) == e.grid.unit_groups - 1;
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

// Reading items per unit: batches x channel groups x splits.
__device__ __forceinline__ int64_t unit_items(const LaunchPlan& p, const UnitBox& box) {
  return box.nb * ((box.nc + p.group_channels - 1) / p.group_channels) * p.splits;
}

// Where reading item `item` lies. Items are numbered unit by unit: tile, unit group, then within the unit batch,
// channel group and split.
struct ItemPos {
  int64_t b, group, split;  // batch, channel group within the batch (kRows: the channel), piece of the group
  int64_t unit, unit_end;   // its unit, and the number one past the unit's last item
};

__device__ __forceinline__ ItemPos item_position(const FusedArgs& a, int64_t item) {
  const LaunchPlan& p = a.plan;
  if (p.unit_batches == 1 && a.batch * p.groups_per_batch * p.splits <= 0xffffffffll) {
    // One batch per unit, the common case: items are in plain (b, group, split) order, and a reading block's start
    // is on the critical path, so 32-bit divisions only.
    const uint32_t splits = static_cast<uint32_t>(p.splits), per_batch = static_cast<uint32_t>(p.groups_per_batch);
    const uint32_t groups_per_unit = static_cast<uint32_t>((p.unit_channels + p.group_channels - 1) / p.group_channels);
    const uint32_t i = static_cast<uint32_t>(item), row_group = i / splits, b = row_group / per_batch;
    const uint32_t group = row_group - b * per_batch, g = group / groups_per_unit;
    const uint32_t unit_first = (b * per_batch + g * groups_per_unit) * splits;
    ItemPos pos;
    pos.b = b;
    pos.group = group;
    pos.split = i - row_group * splits;
    pos.unit = static_cast<int64_t>(b) * p.unit_groups + g;
    pos.unit_end = unit_first + min(groups_per_unit, per_batch - g * groups_per_unit) * splits;
    return pos;
  }
  const int64_t groups_per_unit = (p.unit_channels + p.group_channels - 1) / p.group_channels;
  const int64_t tile_items = p.unit_batches * p.groups_per_batch * p.splits;  // every tile but the last is full
  const int64_t t = item / tile_items;
  int64_t rest = item - t * tile_items;
  const int64_t nb = imin(p.unit_batches, a.batch - t * p.unit_batches);
  const int64_t full_unit_items = nb * groups_per_unit * p.splits;  // every unit group but the last is full
  const int64_t g = imin(rest / full_unit_items, p.unit_groups - 1);
  rest -= g * full_unit_items;
  const int64_t ng = imin(groups_per_unit, p.groups_per_batch - g * groups_per_unit);
  const int64_t b_local = rest / (ng * p.splits);
  rest -= b_local * ng * p.splits;
  const int64_t g_local = rest / p.splits;
  ItemPos pos;
  pos.b = t * p.unit_batches + b_local;
  pos.group = g * groups_per_unit + g_local;
  pos.split = rest - g_local * p.splits;
  pos.unit = t * p.unit_groups + g;
  pos.unit_end = t * tile_items + g * full_unit_items + nb * ng * p.splits;
  return pos;
}

// Whole-row tiles walk rows in item order: (b, c) and the bounds of its unit. 32 bits suffice (plan_launch checks
// B and C against 2^31); it is kept small because the warp's loads need the registers.
struct RowCursor {
  uint32_t b, c, c_begin, c_end, b_end;
  int64_t unit;
};

__device__ __forceinline__ void cursor_enter(const UnitGrid& grid, RowCursor& r, int64_t unit) {
  const UnitBox box = unit_box(grid, unit);
  r.unit = unit;
  r.c_begin = static_cast<uint32_t>(box.c0);
  r.c_end = static_cast<uint32_t>(box.c0 + box.nc);
  r.b_end = static_cast<uint32_t>(box.b0 + box.nb);
}

__device__ __forceinline__ void cursor_next(const UnitGrid& grid, RowCursor& r) {
  if (++r.c < r.c_end) return;
  r.c = r.c_begin;
  if (++r.b < r.b_end) return;
  cursor_enter(grid, r, r.unit + 1);
  r.b = static_cast<uint32_t>(unit_box(grid, r.unit).b0);
  r.c = r.c_begin;
}

// Split tile of a row: positions [split * chunk, ...) of one row, an eighth per warp; one partial.
template <typename T>
__device__ __forceinline__ void read_row_item(const FusedArgs& a, int64_t item, acc_t<T>* reduce) {
  using A = acc_t<T>;
  constexpr int64_t kGrain = 16 / sizeof(T);  // pieces start 16 bytes apart from the row's start
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const ItemPos pos = item_position(a, item);
  const int64_t row = pos.b * a.channels + pos.group, split = pos.split;
  const int64_t begin = split * a.plan.chunk, end = imin(begin + a.plan.chunk, a.plane);
  const int64_t piece = ((end - begin + kWarpsPerBlock - 1) / kWarpsPerBlock + kGrain - 1) / kGrain * kGrain;
  const int64_t p0 = imin(begin + warp * piece, end), p1 = imin(p0 + piece, end);
  const T* x = static_cast<const T*>(a.x) + pos.b * a.stride_b + pos.group * a.stride_c;
  const A s = warp_chunk_sum(x + p0, p1 - p0, lane);
  if (lane == 0) reduce[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    A total = A(0);
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) total += reduce[w];
    static_cast<A*>(a.partials)[row * a.plan.splits + split] = total;
  }
}

// Whole-row tile: rows_per_warp rows per warp, their loads interleaved; the sums are final.
template <typename T>
__device__ __forceinline__ void read_whole_rows(const FusedArgs& a, const UnitGrid& grid, int64_t first_row,
                                                int64_t end_row) {
  using A = acc_t<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t k = a.plan.rows_per_warp;
  const int64_t warp_first = first_row + warp * k, warp_end = imin(warp_first + k, end_row);
  if (warp_first >= warp_end) return;
  const ItemPos start = item_position(a, warp_first);
  RowCursor cursor;
  cursor_enter(grid, cursor, start.unit);
  cursor.b = static_cast<uint32_t>(start.b);
  cursor.c = static_cast<uint32_t>(start.group);
  for (int64_t item = warp_first; item < warp_end; item += kRowsAtOnce) {
    const T* ptrs[kRowsAtOnce];
    int64_t my_row = 0;  // lane r keeps the index of the group's row r, to write its sum
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r) {
      ptrs[r] = nullptr;
      if (item + r < warp_end) {
        ptrs[r] = static_cast<const T*>(a.x) + cursor.b * a.stride_b + cursor.c * a.stride_c;
        if (lane == r) my_row = static_cast<int64_t>(cursor.b) * a.channels + cursor.c;
        cursor_next(grid, cursor);
      }
    }
    A s[kRowsAtOnce];
    warp_rows_sum<T, kRowsAtOnce>(ptrs, a.plane, lane, s);
#pragma unroll
    for (int r = 0; r < kRowsAtOnce; ++r)
      if (lane == r && ptrs[r] != nullptr) static_cast<A*>(a.partials)[my_row] = s[r];
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
  const ItemPos pos = item_position(a, item);
  const int64_t b = pos.b, split = pos.split;
  const int64_t c_begin = pos.group * plan.group_channels;
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
  return static_cast<int>(unit_items(a.plan, box) + a.plan.fold_pieces);
}

// `count` more items of unit u are visible; if that completes it, list it in shared `done`.
__device__ __forceinline__ void arrive(const FusedArgs& a, const UnitGrid& grid, int64_t u, int count,
                                       int64_t* done, int* done_count) {
  const int expected = unit_expected(a, unit_box(grid, u));
  if (ticket_add(a.unit_tickets + u, count) + count == expected) {
    done[atomicAdd(done_count, 1)] = u;  // several threads of a weight-fold block may complete units at once
  }
}

// Thread 0, after the block's tile is written: its items, unit by unit (they are consecutive in item order), to
// their tickets.
__device__ __forceinline__ void arrive_tile(const FusedArgs& a, const UnitGrid& grid, int64_t tile, int64_t* done,
                                            int* done_count) {
  const LaunchPlan& p = a.plan;
  if (p.rows_per_warp == 0) {
    arrive(a, grid, item_position(a, tile).unit, 1, done, done_count);
    return;
  }
  int64_t item = tile * p.rows_per_block;
  const int64_t end = imin(item + p.rows_per_block, a.batch * a.channels);
  const ItemPos pos = item_position(a, item);
  int64_t u = pos.unit, unit_end = pos.unit_end;
  while (item < end) {
    const int64_t count = imin(end, unit_end) - item;
    arrive(a, grid, u, static_cast<int>(count), done, done_count);
    item += count;
    ++u;
    unit_end += unit_items(p, unit_box(grid, u));
  }
}

// weight [C, C_out, kernel_area] -> piece `piece` (kFoldValues values) of the wsum rows of unit group g
// (wsum [C, wsum_stride]: rows padded to whole 16-byte pieces for the staged GEMM). The thread that folds a row's
// last value also zeroes the row's padding, which the staged GEMM copies (and never uses): no copy reads memory
// that nothing wrote.
template <typename T>
__device__ __forceinline__ void fold_weight_piece(const FusedArgs& a, int64_t g, int64_t piece) {
  const T* weight = static_cast<const T*>(a.weight);
  acc_t<T>* wsum = static_cast<acc_t<T>*>(a.wsum);
  const int64_t group_values = imin(a.plan.unit_channels, a.channels - g * a.plan.unit_channels) * a.c_out;
  const int64_t first = g * a.plan.unit_channels * a.c_out + piece * kFoldValues;
  const int64_t count = imin(kFoldValues, group_values - piece * kFoldValues);  // <= 0 for a spare piece
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < count; i += kBlockThreads) {
    const int64_t c = (first + i) / a.c_out, n = first + i - c * a.c_out;
    wsum[c * a.wsum_stride + n] = tap_sum(weight + (first + i) * a.kernel_area, a.kernel_area);
    if (n == a.c_out - 1) {
      for (int64_t pad = a.c_out; pad < a.wsum_stride; ++pad) wsum[c * a.wsum_stride + pad] = acc_t<T>(0);
    }
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
  e.wsum = plan.self_contained ? nullptr : static_cast<const A*>(a.wsum);
  e.wsum_stride = a.wsum_stride;
  e.weight = static_cast<const T*>(a.weight);
  e.kernel_area = a.kernel_area;
  e.conv_bias = static_cast<const T*>(a.conv_bias);
  e.bias = static_cast<const T*>(a.bias);
  e.bias_stride = a.bias_stride;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<T*>(a.out);
  return e;
}

// Self-contained tile: the batches of `box`, contiguous, 16-byte aligned and a whole number of vectors per row
// (plan_launch checks), read with all of the block's loads in flight at once. Each thread sums its vectors into
// `reduce` (one slot per vector); then a warp per row adds the row's slots in order. The sums go to shared memory
// for the epilogue, and to `sums`.
template <typename T>
__device__ __forceinline__ void read_self_contained_tile(const FusedArgs& a, const UnitBox& box, acc_t<T>* reduce,
                                                         acc_t<T>* unit_sums) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  const int64_t rows = box.nb * a.channels, row_vectors = a.plane / kVec, vectors = rows * row_vectors;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(a.x) + box.b0 * a.stride_b);
  uint4 v[kSelfContainedLoads];
#pragma unroll
  for (int j = 0; j < kSelfContainedLoads; ++j)
    if (threadIdx.x + j * kBlockThreads < vectors) v[j] = __ldcs(x + threadIdx.x + j * kBlockThreads);
#pragma unroll
  for (int j = 0; j < kSelfContainedLoads; ++j)
    if (threadIdx.x + j * kBlockThreads < vectors) reduce[threadIdx.x + j * kBlockThreads] = vec_sum<T>(v[j]);
  clear_sum_padding(box, unit_sums);
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t stride = unit_sum_stride(box.nb);
  for (int64_t r = warp; r < rows; r += kWarpsPerBlock) {
    A s = A(0);
    for (int64_t i = lane; i < row_vectors; i += 32) s += reduce[r * row_vectors + i];
    s = warp_sum(s);
    if (lane == 0) {
      const int64_t b = r / a.channels;
      unit_sums[(r - b * a.channels) * stride + b] = s;
      static_cast<A*>(a.sums)[box.b0 * a.channels + r] = s;
    }
  }
  __syncthreads();
}

template <typename T, XLayout kLayout>
__global__ void __launch_bounds__(kBlockThreads, kMinBlocksPerSm<T>) fused_kernel(const __grid_constant__ FusedArgs a) {
  using A = acc_t<T>;
  // The reads' cross-thread sums (kReduceBytes) and the epilogue's W.sum stage share one buffer: a block does one,
  // then the other.
  __shared__ __align__(16) unsigned char stage_bytes[kStageBytes];
  __shared__ __align__(16) A unit_sums[kMaxUnitSums];
  __shared__ int64_t done[kBlockThreads];  // units completed by this block
  __shared__ int done_count, flag;
  A* reduce = reinterpret_cast<A*>(stage_bytes);
  const EpilogueShared<A> shared{unit_sums, reduce, &flag};
  // The epilogue's arguments are made where they are used, from the kernel's (constant) parameters: kept live
  // through the reads, they would take registers the loads need.
  const UnitGrid grid{a.batch, a.channels, a.plan.unit_batches, a.plan.unit_channels, a.plan.unit_groups};
  const bool fold_block = blockIdx.x < a.plan.wsum_blocks;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) - a.plan.wsum_blocks;
  const int64_t fold_group = fold_block ? blockIdx.x / a.plan.fold_pieces : 0;
  bool sums_in_shared = false;
  if (fold_block) {
    fold_weight_piece<T>(a, fold_group, blockIdx.x - fold_group * a.plan.fold_pieces);
  } else if constexpr (kLayout == XLayout::kRows) {
    if (a.plan.self_contained) {
      read_self_contained_tile<T>(a, unit_box(grid, tile), reduce, unit_sums);
      sums_in_shared = true;
    } else if (a.plan.rows_per_warp > 0) {
      const int64_t first = tile * a.plan.rows_per_block;
      read_whole_rows<T>(a, grid, first, imin(first + a.plan.rows_per_block, a.batch * a.channels));
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
  if (!a.plan.tickets && !sums_in_shared) return;
  // Count this block's writes (the ticket adds release them, see ticket_add). A reading block counts its tile's
  // items; a fold block tells unit (tile, fold_group) of every tile, up to kBlockThreads tiles per round. One call
  // site for the epilogue keeps the kernel within its registers.
  const int64_t rounds = fold_block ? (a.plan.tiles + kBlockThreads - 1) / kBlockThreads : 1;
  for (int64_t round = 0; round < rounds; ++round) {
    __syncthreads();  // this block's writes are done (first round); the previous round's epilogues are done
    if (threadIdx.x == 0) {
      done_count = 0;
      if (sums_in_shared) done[done_count++] = tile;  // self-contained: the block's tile is its whole unit
    }
    __syncthreads();
    if (fold_block) {
      const int64_t unit_tile = round * kBlockThreads + threadIdx.x;
      if (unit_tile < a.plan.tiles) arrive(a, grid, unit_tile * a.plan.unit_groups + fold_group, 1, done, &done_count);
    } else if (threadIdx.x == 0 && !sums_in_shared) {
      arrive_tile(a, grid, tile, done, &done_count);
    }
    __syncthreads();
    const int completed = done_count;
    for (int i = 0; i < completed; ++i) unit_epilogue(fused_epilogue_args<T>(a), done[i], shared, sums_in_shared);
  }
}

// gemm_lse: block u runs unit u's epilogue from ready-made sums (one slot per row).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads, 1) gemm_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  __shared__ __align__(16) unsigned char stage_bytes[kStageBytes];
  __shared__ __align__(16) A unit_sums[kMaxUnitSums];
  __shared__ int flag;
  Epilogue<A> e;
  e.grid = UnitGrid{a.batch, a.channels, a.unit_batches, a.unit_channels, a.unit_groups};
  e.splits = 1;
  e.partials = static_cast<const A*>(a.sums);
  e.sums = nullptr;
  e.sums_only = false;
  e.c_out = a.c_out;
  e.wsum = static_cast<const A*>(a.weight_sum);
  e.wsum_stride = a.weight_sum_stride;
  e.weight = nullptr;
  e.kernel_area = 0;
  e.conv_bias = nullptr;
  e.bias = static_cast<const A*>(a.total_bias);
  e.bias_stride = 1;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<A*>(a.out);
  unit_epilogue(e, blockIdx.x, EpilogueShared<A>{unit_sums, reinterpret_cast<A*>(stage_bytes), &flag});
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
