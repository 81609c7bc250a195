// The epilogue, run by the block that completes a unit: the unit's row sums, its share of the GEMM (W.sum staged
// through shared memory), and, by the block that completes a batch tile's last unit, the shares added in unit order,
// the biases and the logsumexp. Also the fold of W.sum by weight-fold blocks, and a self-contained tile's whole
// epilogue (its own kernel: forward.cu) from the inputs it staged while its reads were in flight.
#pragma once

#include "units.cuh"
#include "reduce.cuh"

namespace fusedlse {
namespace {

// What the block-wide epilogue reads and writes; T is the type of bias and output.
template <typename T> struct Epilogue {
  using A = acc_t<T>;
  UnitGrid grid;
  int64_t splits;
  const A* partials;   // [B*C*splits]: slot row * splits + split
  A* sums;             // [B, C]: written when splits > 1 (it is `partials` otherwise)
  bool sums_only;
  int64_t c_out;
  const A* wsum;       // [C, wsum_stride], written earlier in the launch
  int64_t wsum_stride; // C_out rounded up to whole 16-byte pieces
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
  return dot * e.scale + column_bias(e.bias, e.bias_stride, e.conv_bias, n);
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

// The end of the unit's GEMM: a thread's accumulators for column n (one per batch of the unit) go to z (batch b's
// row z_batch_stride values after batch b - 1's), the unit's share in zpart. With several channel slices they are
// first added up through shared memory, in slice order, four batches at a time (slices > 1 means cols == C_out <
// 256: there is one column pass, and n is the thread's column).
template <typename A>
__device__ __forceinline__ void store_unit_share(const UnitBox& box, A* z, int64_t z_batch_stride, int64_t n,
                                                 int64_t cols, int64_t slices, int64_t slice, bool active,
                                                 const A (&dot)[kMaxUnitBatches], A* reduce) {
  constexpr int kQuads = kMaxUnitBatches / 4;
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

// How the GEMM of a unit spreads over the block: a thread owns one output column for every batch of the unit, so W.sum
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

// Where unit `box`'s share of the GEMM goes in zpart: batch b's row at b * unit_groups * C_out from there.
template <typename T> __device__ __forceinline__ acc_t<T>* unit_zpart(const Epilogue<T>& e, const UnitBox& box) {
  return e.zpart + (box.b0 * e.grid.unit_groups + box.group) * e.c_out;
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
    store_unit_share(box, unit_zpart(e, box), e.grid.unit_groups * e.c_out, n, l.cols, l.slices, l.slice, active, dot,
                     stage);
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
    state = group_lse(state);
    if (lane == 0) e.out[b] = from_acc<T>(ten_lse(state));
  }
}

// A self-contained tile's epilogue inputs, in the stage past the reads' reduce buffer (self_contained_stage_values):
// W.sum [C, C_out] and each column's summed biases [C_out].
template <typename A> struct TileStage {
  A* wsum;
  A* bias;
};

template <typename A>
__device__ __forceinline__ TileStage<A> tile_stage(unsigned char* stage_bytes, int64_t channels, int64_t c_out) {
  A* first = reinterpret_cast<A*>(stage_bytes + kReduceBytes);
  return TileStage<A>{first, first + channels * c_out};
}

// Self-contained tiles: W.sum folded from the weight's taps and the biases summed into the tile's stage, by the whole
// block while its loads of x are in flight, so that their round trips overlap those of x: after the reads only the
// tile's GEMM goes through memory (zpart, in L2). A thread's first W.sum value and first bias are both loaded before
// either is stored: a store to the stage ahead of a load would hold the load back (the compiler cannot tell the
// stage from global memory), and most small weights are one value per thread. The reads' __syncthreads() publishes
// the stage.
template <typename T>
__device__ __forceinline__ void stage_tile_inputs(const FusedArgs& a, unsigned char* stage_bytes) {
  using A = acc_t<T>;
  const TileStage<A> st = tile_stage<A>(stage_bytes, a.channels, a.c_out);
  const T* weight = static_cast<const T*>(a.weight);
  const T* bias = static_cast<const T*>(a.bias);
  const T* conv_bias = static_cast<const T*>(a.conv_bias);
  const int64_t values = a.channels * a.c_out, t = threadIdx.x;
  const int64_t first_taps = t < values ? grouped_taps_offset(t, a.channels, a.c_out, a.groups, a.kernel_area) : -1;
  const A first_wsum = first_taps >= 0 ? tap_sum_batched(weight + first_taps, a.kernel_area) : A(0);
  const A first_bias = t < a.c_out ? column_bias(bias, a.bias_stride, conv_bias, t) : A(0);
  if (t < values) st.wsum[t] = first_wsum;
  if (t < a.c_out) st.bias[t] = first_bias;
  for (int64_t i = t + kBlockThreads; i < values; i += kBlockThreads) {
    st.wsum[i] = pair_tap_sum(weight, i, a.channels, a.c_out, a.groups, a.kernel_area);
  }
  for (int64_t n = t + kBlockThreads; n < a.c_out; n += kBlockThreads) {
    st.bias[n] = column_bias(bias, a.bias_stride, conv_bias, n);
  }
}

// A self-contained tile's batches, from shared memory only: its sums (read_self_contained_tile) and the W.sum and
// biases it staged (stage_tile_inputs). A warp per batch, a lane per output column: the lane adds its column's
// logit over the channels in order and pushes it; the warp merges its lanes' states. No [B, C_out] share goes
// through memory, and no thread waits on another warp: the chain after the reads is a few FMAs and one butterfly.
template <typename T>
__device__ __forceinline__ void finish_self_contained_tile(const FusedArgs& a, const UnitBox& box,
                                                           const acc_t<T>* unit_sums, TileStage<acc_t<T>> stage) {
  using A = acc_t<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t stride = unit_sum_stride(box.nb);
  const A scale = static_cast<A>(a.scale);
  for (int64_t b = warp; b < box.nb; b += kWarpsPerBlock) {
    Lse<A> state{-INFINITY, A(0)};
    for (int64_t n = lane; n < a.c_out; n += 32) {
      A dot = A(0);
      for (int64_t k = 0; k < box.nc; ++k) dot += unit_sums[k * stride + b] * stage.wsum[k * a.c_out + n];
      lse_push(state, dot * scale + stage.bias[n]);
    }
    state = group_lse(state);
    if (lane == 0) static_cast<T*>(a.out)[box.b0 + b] = from_acc<T>(ten_lse(state));
  }
}

// Unit u's epilogue, run by the whole block (every thread calls it) once everything the unit needs is visible.
// The block that completes a tile's last unit finishes the tile. One call site for every unit keeps the kernel
// within its registers.
template <typename T>
__device__ __forceinline__ void unit_epilogue(const Epilogue<T>& e, int64_t u, EpilogueShared<acc_t<T>> shared) {
  using A = acc_t<T>;
  const UnitBox box = unit_box(e.grid, u);
  // The first W.sum chunk's copies fly while the row sums are gathered: one round trip to L2 for both.
  if (!e.sums_only) {
    stage_issue(e, box, stage_chunk<A>(box, e.c_out, gemm_layout(e.c_out, box).cols, 0, 0), shared.stage);
  }
  unit_row_sums(e, box, shared.unit_sums);
  if (e.sums_only) return;
  unit_gemm_staged(e, box, shared.unit_sums, shared.stage);
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

// weight [C, C_out / groups, kernel_area] -> piece `piece` (kFoldValues values) of the wsum rows of unit group g
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
    wsum[c * a.wsum_stride + n] = pair_tap_sum(weight, first + i, a.channels, a.c_out, a.groups, a.kernel_area);
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
  e.wsum = static_cast<const A*>(a.wsum);
  e.wsum_stride = a.wsum_stride;
  e.conv_bias = static_cast<const T*>(a.conv_bias);
  e.bias = static_cast<const T*>(a.bias);
  e.bias_stride = a.bias_stride;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<T*>(a.out);
  return e;
}

}  // namespace
}  // namespace fusedlse
