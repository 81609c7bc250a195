// The fused forward in one launch:
//   blocks [0, wsum_blocks)          fold weight.sum((2,3)) into wsum, one channel group each;
//   blocks [wsum_blocks, grid end)   read x once, writing per-row partial sums.
// A block that finishes work takes tickets for the epilogue units it contributed to; the block that completes a
// unit (one channel group of one batch) turns its sums into that unit's share of the GEMM, and the block that
// completes the last unit of a batch adds bias and takes the logsumexp. Every sum runs in a fixed order, so the
// result is bitwise reproducible; tickets are reset by the block that consumes them, so nothing is cleared per call.
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

// One warp's sum of n contiguous elements at p: scalar head up to 16-byte alignment, 16-byte body with four
// loads in flight per lane, scalar tail. The result is the same in every lane.
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
  for (; i + 96 < vectors; i += 128) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = __ldcs(body + i + 32 * u);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc[u] += vec_sum<T>(v[u]);
  }
  for (; i < vectors; i += 32) acc[2] += vec_sum<T>(__ldcs(body + i));
  return warp_sum((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

// One warp's sums of kRowsAtOnce whole rows of n elements, loads of all rows interleaved so that short rows
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

constexpr int kRowsAtOnce = 4;

// Row layout: each warp reduces its own warp item. Returns the partial-index range [first, end) this block wrote.
template <typename T>
__device__ void reduce_rows_item(const FusedArgs& a, int64_t block_item, int64_t* first, int64_t* end) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  const T* x = static_cast<const T*>(a.x);
  A* partials = static_cast<A*>(a.partials);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t rows = a.batch * a.channels;
  const int64_t item0 = block_item * kWarpsPerBlock;
  const int64_t item_end = imin(item0 + kWarpsPerBlock, plan.warp_items);
  const int64_t item = item0 + warp;
  auto row_ptr = [&](int64_t row) {
    return x + (row / a.channels) * a.stride_b + (row % a.channels) * a.stride_c;
  };
  if (plan.splits > 1) {
    *first = item0;
    *end = item_end;
    if (item < item_end) {
      const int64_t row = item / plan.splits, split = item % plan.splits;
      const int64_t begin = split * plan.chunk;
      const int64_t count = imin(plan.chunk, a.plane - begin);
      const A s = warp_chunk_sum(row_ptr(row) + begin, count, lane);
      if (lane == 0) partials[item] = s;
    }
  } else {
    *first = item0 * plan.rows_per_warp_item;
    *end = imin(item_end * plan.rows_per_warp_item, rows);
    if (item < item_end) {
      const int64_t row_end = imin((item + 1) * plan.rows_per_warp_item, rows);
      for (int64_t row = item * plan.rows_per_warp_item; row < row_end; row += kRowsAtOnce) {
        const T* ptrs[kRowsAtOnce];
#pragma unroll
        for (int r = 0; r < kRowsAtOnce; ++r) ptrs[r] = row + r < row_end ? row_ptr(row + r) : nullptr;
        A s[kRowsAtOnce];
        warp_rows_sum<T, kRowsAtOnce>(ptrs, a.plane, lane, s);
        if (lane == 0) {
#pragma unroll
          for (int r = 0; r < kRowsAtOnce; ++r)
            if (ptrs[r] != nullptr) partials[row + r] = s[r];
        }
      }
    }
  }
}

// Channels-last layout: the block reduces `channels_per_item` channels of one batch over one split of H*W.
// Threads form a [position lanes, channel lanes] grid; kVec channels per thread (1, or 16 bytes' worth).
template <typename T, int kVec>
__device__ void reduce_channels_last_item(const FusedArgs& a, int64_t block_item, unsigned char* scratch,
                                          int64_t* first_row, int64_t* end_row) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  const int64_t split = block_item % plan.splits;
  const int64_t channel_block = (block_item / plan.splits) % plan.channel_blocks;
  const int64_t b = block_item / (plan.splits * plan.channel_blocks);
  const int64_t c_begin = channel_block * plan.channels_per_item;
  const int64_t c_end = imin(c_begin + plan.channels_per_item, a.channels);
  const int channel_lanes = static_cast<int>(plan.channels_per_item / kVec);
  const int position_lanes = kBlockThreads / channel_lanes;
  const int channel_lane = threadIdx.x % channel_lanes, position_lane = threadIdx.x / channel_lanes;
  const int64_t c = c_begin + static_cast<int64_t>(channel_lane) * kVec;
  const int64_t p_begin = split * plan.chunk, p_end = imin(p_begin + plan.chunk, a.plane);

  A acc[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) acc[e] = A(0);
  if (position_lane < position_lanes && c < c_end) {
    const T* base = static_cast<const T*>(a.x) + b * a.stride_b + c;
    int64_t p = p_begin + position_lane;
    const int64_t step = position_lanes;
    if constexpr (kVec > 1) {
      for (; p + 3 * step < p_end; p += 4 * step) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) v[u] = __ldcs(reinterpret_cast<const uint4*>(base + (p + u * step) * a.stride_p));
#pragma unroll
        for (int u = 0; u < 4; ++u)
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[e] += vec_elem<T>(v[u], e);
      }
      for (; p < p_end; p += step) {
        const uint4 v = __ldcs(reinterpret_cast<const uint4*>(base + p * a.stride_p));
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[e] += vec_elem<T>(v, e);
      }
    } else {
      A more[3] = {A(0), A(0), A(0)};
      for (; p + 3 * step < p_end; p += 4 * step) {
        const T v0 = base[p * a.stride_p], v1 = base[(p + step) * a.stride_p];
        const T v2 = base[(p + 2 * step) * a.stride_p], v3 = base[(p + 3 * step) * a.stride_p];
        acc[0] += to_acc(v0);
        more[0] += to_acc(v1);
        more[1] += to_acc(v2);
        more[2] += to_acc(v3);
      }
      for (; p < p_end; p += step) acc[0] += to_acc(base[p * a.stride_p]);
      acc[0] = (acc[0] + more[0]) + (more[1] + more[2]);
    }
  }
  // Combine position lanes in a fixed order: scratch is [position_lanes][channels_per_item].
  A* lanes = reinterpret_cast<A*>(scratch);
  const int64_t width = plan.channels_per_item;
  if (position_lane < position_lanes) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) lanes[position_lane * width + channel_lane * kVec + e] = acc[e];
  }
  __syncthreads();
  A* partials = static_cast<A*>(a.partials);
  for (int64_t t = threadIdx.x; t < c_end - c_begin; t += kBlockThreads) {
    A s = A(0);
    for (int l = 0; l < position_lanes; ++l) s += lanes[l * width + t];
    partials[(b * a.channels + c_begin + t) * plan.splits + split] = s;
  }
  *first_row = b * a.channels + c_begin;
  *end_row = b * a.channels + c_end;
}

// ---------------------------------------------------------------------------------------------------------------
// The epilogue.

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

// Merge every thread's state in a fixed tree order; the block's result is returned in thread 0.
template <typename A> __device__ Lse<A> block_lse(Lse<A> s, unsigned char* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    Lse<A> other{__shfl_xor_sync(0xffffffffu, s.max_value, offset), __shfl_xor_sync(0xffffffffu, s.scaled_sum, offset)};
    s = lse_merge(s, other);
  }
  Lse<A>* per_warp = reinterpret_cast<Lse<A>*>(scratch);
  __syncthreads();  // scratch may still be read by the caller's previous phase
  if (threadIdx.x % 32 == 0) per_warp[threadIdx.x / 32] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    s = per_warp[0];
    for (int w = 1; w < kWarpsPerBlock; ++w) s = lse_merge(s, per_warp[w]);
  }
  return s;
}

// What a unit epilogue reads and writes; T is the type of bias and output.
template <typename T> struct Epilogue {
  using A = acc_t<T>;
  const A* partials;   // [B*C*splits]
  int64_t splits;
  A* sums;             // [B, C]: written when splits > 1 (it is `partials` otherwise)
  bool sums_only;
  int64_t channels, unit_rows, groups, c_out;
  const A* wsum;       // [C, C_out]
  const T* conv_bias;  // [C_out] or null
  const T* bias;       // element n at n * bias_stride
  int64_t bias_stride;
  A scale;
  A* zpart;            // [B, groups, C_out]
  int* batch_tickets;  // [B]
  T* out;              // [B]
};

template <typename T>
__device__ __forceinline__ acc_t<T> logit(const Epilogue<T>& e, int64_t n, acc_t<T> dot) {
  acc_t<T> v = dot * e.scale + to_acc(e.bias[n * e.bias_stride]);
  if (e.conv_bias != nullptr) v += to_acc(e.conv_bias[n]);
  return v;
}

// Runs in the block that completed unit (b, g). Block-uniform: every thread calls it.
template <typename T>
__device__ void unit_epilogue(const Epilogue<T>& e, int64_t b, int64_t g, unsigned char* scratch, int* flag) {
  using A = acc_t<T>;
  const int64_t k0 = g * e.unit_rows;
  const int64_t k_count = imin(e.unit_rows, e.channels - k0);
  A* unit_sums = reinterpret_cast<A*>(scratch);
  __syncthreads();  // scratch may still be in use by the previous phase
  for (int64_t t = threadIdx.x; t < k_count; t += kBlockThreads) {
    const int64_t row = b * e.channels + k0 + t;
    A s = A(0);
    for (int64_t j = 0; j < e.splits; ++j) s += __ldcg(e.partials + row * e.splits + j);
    if (e.splits > 1) e.sums[row] = s;
    unit_sums[t] = s;
  }
  __syncthreads();
  if (e.sums_only) return;

  Lse<A> state{-INFINITY, A(0)};
  for (int64_t n = threadIdx.x; n < e.c_out; n += kBlockThreads) {
    A dot = A(0);
    const A* w = e.wsum + k0 * e.c_out + n;
#pragma unroll 4
    for (int64_t k = 0; k < k_count; ++k) dot += unit_sums[k] * __ldcg(w + k * e.c_out);
    if (e.groups == 1) {
      lse_push(state, logit(e, n, dot));
    } else {
      e.zpart[(b * e.groups + g) * e.c_out + n] = dot;
    }
  }
  if (e.groups > 1) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      const bool last = atomicAdd(e.batch_tickets + b, 1) == e.groups - 1;
      if (last) e.batch_tickets[b] = 0;
      *flag = last;
    }
    __syncthreads();
    if (!*flag) return;
    __threadfence();
    for (int64_t n = threadIdx.x; n < e.c_out; n += kBlockThreads) {
      A dot = A(0);
      for (int64_t q = 0; q < e.groups; ++q) dot += __ldcg(e.zpart + (b * e.groups + q) * e.c_out + n);
      lse_push(state, logit(e, n, dot));
    }
  }
  state = block_lse(state, scratch);
  if (threadIdx.x == 0) e.out[b] = from_acc<T>(A(10) * (state.max_value + log(state.scaled_sum)));
}

// Unit u = b * groups + g holds rows [b*C + g*unit_rows, b*C + min((g+1)*unit_rows, C)).
struct UnitSpace {
  int64_t channels, unit_rows, groups;
  __device__ int64_t unit_of_row(int64_t row) const {
    return (row / channels) * groups + (row % channels) / unit_rows;
  }
  __device__ int64_t first_row(int64_t u) const { return (u / groups) * channels + (u % groups) * unit_rows; }
  __device__ int64_t end_row(int64_t u) const {
    return (u / groups) * channels + imin((u % groups + 1) * unit_rows, channels);
  }
};

// After writing partials [first, end) (in units of rows * per_row), count them against each unit they fall in,
// and run the epilogue of every unit this completes. `extra` is what each unit expects beyond its partials.
template <typename T>
__device__ void settle_range(const Epilogue<T>& e, int* unit_tickets, int64_t first, int64_t end, int64_t per_row,
                             int extra, unsigned char* scratch, int* flag) {
  const UnitSpace units{e.channels, e.unit_rows, e.groups};
  __threadfence();
  __syncthreads();
  if (first >= end) return;
  const int64_t u_end = units.unit_of_row((end - 1) / per_row) + 1;
  for (int64_t u = units.unit_of_row(first / per_row); u < u_end; ++u) {
    if (threadIdx.x == 0) {
      const int64_t lo = imax(first, units.first_row(u) * per_row);
      const int64_t hi = imin(end, units.end_row(u) * per_row);
      const int expected = static_cast<int>((units.end_row(u) - units.first_row(u)) * e.splits) + extra;
      const int contributed = static_cast<int>(hi - lo);
      const bool last = atomicAdd(unit_tickets + u, contributed) + contributed == expected;
      if (last) unit_tickets[u] = 0;
      *flag = last;
    }
    __syncthreads();
    const bool last = *flag;
    if (last) {
      __threadfence();
      unit_epilogue(e, u / e.groups, u % e.groups, scratch, flag);
    }
    __syncthreads();
  }
}

// weight [C, C_out, kernel_area] -> wsum rows of channel group g; then each batch's unit (b, g) is told.
template <typename T>
__device__ void fold_weight_group(const FusedArgs& a, const Epilogue<T>& e, int64_t g, unsigned char* scratch,
                                  int* flag) {
  using A = acc_t<T>;
  const T* weight = static_cast<const T*>(a.weight);
  A* wsum = static_cast<A*>(a.wsum);
  const int64_t k0 = g * e.unit_rows;
  const int64_t count = imin(e.unit_rows, a.channels - k0) * a.c_out;
  for (int64_t i = threadIdx.x; i < count; i += kBlockThreads) {
    const int64_t idx = k0 * a.c_out + i;
    const T* taps = weight + idx * a.kernel_area;
    A s = A(0);
    for (int64_t q = 0; q < a.kernel_area; ++q) s += to_acc(taps[q]);
    wsum[idx] = s;
  }
  __threadfence();
  __syncthreads();
  bool* completes = reinterpret_cast<bool*>(flag + 1);  // kBlockThreads flags after `flag`
  // Each unit of this group waits for its rows' partials plus this block's +1.
  const int expected = static_cast<int>(imin(e.unit_rows, a.channels - k0) * e.splits) + 1;
  for (int64_t b0 = 0; b0 < a.batch; b0 += kBlockThreads) {
    const int64_t b = b0 + threadIdx.x;
    bool last = false;
    if (b < a.batch) {
      const int64_t u = b * e.groups + g;
      last = atomicAdd(a.unit_tickets + u, 1) + 1 == expected;
      if (last) a.unit_tickets[u] = 0;
    }
    completes[threadIdx.x] = last;
    __syncthreads();
    for (int t = 0; t < kBlockThreads && b0 + t < a.batch; ++t) {
      if (completes[t]) {  // block-uniform: read from shared memory after the barrier
        __threadfence();
        unit_epilogue(e, b0 + t, g, scratch, flag);
      }
    }
    __syncthreads();
  }
}

template <typename T>
__device__ Epilogue<T> fused_epilogue_args(const FusedArgs& a) {
  using A = acc_t<T>;
  Epilogue<T> e;
  e.partials = static_cast<const A*>(a.partials);
  e.splits = a.plan.splits;
  e.sums = static_cast<A*>(a.sums);
  e.sums_only = a.mode == Mode::kSumsOnly;
  e.channels = a.channels;
  e.unit_rows = a.plan.unit_rows;
  e.groups = a.plan.groups;
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

constexpr int kScratchBytes = 8192;

template <typename T, XLayout kLayout>
__global__ void __launch_bounds__(kBlockThreads, 3) fused_kernel(const FusedArgs a) {
  __shared__ __align__(16) unsigned char scratch[kScratchBytes];
  __shared__ int flags[1 + kBlockThreads];
  const Epilogue<T> e = fused_epilogue_args<T>(a);
  const int extra = a.plan.wsum_blocks > 0 ? 1 : 0;
  if (blockIdx.x < a.plan.wsum_blocks) {
    fold_weight_group<T>(a, e, blockIdx.x, scratch, flags);
    return;
  }
  const int64_t item = static_cast<int64_t>(blockIdx.x) - a.plan.wsum_blocks;
  int64_t first = 0, end = 0;
  if constexpr (kLayout == XLayout::kRows) {
    reduce_rows_item<T>(a, item, &first, &end);
    if (a.mode == Mode::kSumsOnly && a.plan.splits == 1) return;  // partials are the sums already
    settle_range<T>(e, a.unit_tickets, first, end, a.plan.splits, extra, scratch, flags);
  } else {
    constexpr int kVec = 16 / sizeof(T);
    if (a.plan.vec == kVec) {
      reduce_channels_last_item<T, kVec>(a, item, scratch, &first, &end);
    } else {
      reduce_channels_last_item<T, 1>(a, item, scratch, &first, &end);
    }
    if (a.mode == Mode::kSumsOnly && a.plan.splits == 1) return;
    settle_range<T>(e, a.unit_tickets, first, end, 1, extra, scratch, flags);
  }
}

// gemm_lse: block (b, g) runs unit (b, g)'s epilogue from ready-made sums.
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) gemm_lse_kernel(const GemmLseArgs a) {
  __shared__ __align__(16) unsigned char scratch[kScratchBytes];
  __shared__ int flag;
  Epilogue<A> e;
  e.partials = static_cast<const A*>(a.sums);
  e.splits = 1;
  e.sums = nullptr;
  e.sums_only = false;
  e.channels = a.channels;
  e.unit_rows = a.unit_rows;
  e.groups = a.groups;
  e.c_out = a.c_out;
  e.wsum = static_cast<const A*>(a.weight_sum);
  e.conv_bias = nullptr;
  e.bias = static_cast<const A*>(a.total_bias);
  e.bias_stride = 1;
  e.scale = static_cast<A>(a.scale);
  e.zpart = static_cast<A*>(a.zpart);
  e.batch_tickets = a.batch_tickets;
  e.out = static_cast<A*>(a.out);
  unit_epilogue(e, blockIdx.x / a.groups, blockIdx.x % a.groups, scratch, &flag);
}

template <typename T>
cudaError_t launch_fused_typed(const FusedArgs& a, cudaStream_t stream) {
  const int64_t blocks = a.plan.wsum_blocks + a.plan.reduce_blocks;
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

}  // namespace

int fused_blocks_per_sm(ScalarKind kind, XLayout layout) {
  switch (kind) {
    case ScalarKind::kFloat: return blocks_per_sm_typed<float>(layout);
    case ScalarKind::kHalf: return blocks_per_sm_typed<__half>(layout);
    case ScalarKind::kBFloat16: return blocks_per_sm_typed<__nv_bfloat16>(layout);
    case ScalarKind::kDouble: return blocks_per_sm_typed<double>(layout);
  }
  return 1;
}

cudaError_t launch_fused(const FusedArgs& args, cudaStream_t stream) {
  switch (args.kind) {
    case ScalarKind::kFloat: return launch_fused_typed<float>(args, stream);
    case ScalarKind::kHalf: return launch_fused_typed<__half>(args, stream);
    case ScalarKind::kBFloat16: return launch_fused_typed<__nv_bfloat16>(args, stream);
    case ScalarKind::kDouble: return launch_fused_typed<double>(args, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_gemm_lse(const GemmLseArgs& args, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(args.batch * args.groups);
  if (args.is_double) {
    gemm_lse_kernel<double><<<blocks, kBlockThreads, 0, stream>>>(args);
  } else {
    gemm_lse_kernel<float><<<blocks, kBlockThreads, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

}  // namespace fusedlse
