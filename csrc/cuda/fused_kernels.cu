// The fused forward in one launch:
//   blocks [0, wsum_blocks)          fold weight.sum((2,3)) into wsum, one channel group each;
//   blocks [wsum_blocks, grid end)   persistent: each warp reads a balanced, contiguous range of warp items of x,
//                                    writing per-row partial sums; no block-wide barrier while reading.
// A warp counts the partials it wrote against the epilogue unit (a few channels of one batch) they belong to, one
// ticket per unit it touched; the warp that completes a unit turns its sums into that unit's share of the GEMM, and
// the warp that completes a batch's last unit adds bias and takes the logsumexp. Every sum runs in a fixed order,
// so the result is bitwise reproducible; tickets are reset by the warp that consumes them, so nothing is cleared
// per call.
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
// above the ~32 KiB Hopper needs to saturate HBM, with room to spare while a warp runs an epilogue.
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

constexpr int kRowsAtOnce = 4;

// ---------------------------------------------------------------------------------------------------------------
// Work layout shared by the readers and the epilogue.
//
// x is cut into `items`: S = splits consecutive items per group, where a group is one row (row layout) or one
// channel block of one batch (channels-last). Warp w of the reading blocks owns items [begin(w), begin(w+1)).
// For each group it touches, a warp writes one partial per row, at slot row*S + (first item it owns in the group
// - the group's first item). A row's sum is the sum of its slots over the owning warps, in warp order.
struct Layout {
  int64_t channels, splits, items, warps;
  int64_t group_channels, groups_per_batch;  // rows: 1, C; channels-last: channels per block, blocks per batch
  int64_t unit_rows, groups;                 // epilogue units: unit_rows channels of one batch, `groups` per batch

  __device__ int64_t begin(int64_t w) const { return items * w / warps; }
  __device__ int64_t owner(int64_t item) const { return ((item + 1) * warps - 1) / items; }
  __device__ int64_t first_item_of_row(int64_t row) const {
    return ((row / channels) * groups_per_batch + (row % channels) / group_channels) * splits;
  }
  __device__ int64_t unit_of_row(int64_t row) const {
    return (row / channels) * groups + (row % channels) / unit_rows;
  }
  __device__ int64_t unit_first_row(int64_t u) const { return (u / groups) * channels + (u % groups) * unit_rows; }
  __device__ int64_t unit_end_row(int64_t u) const {
    return (u / groups) * channels + imin((u % groups + 1) * unit_rows, channels);
  }
  // Partials a row receives: one from each warp owning some of its group's items. With fewer items than warps,
  // every warp owns at most one item and some own none.
  __device__ int64_t writers_of_row(int64_t row) const {
    if (items < warps) return splits;
    const int64_t first = first_item_of_row(row);
    return owner(first + splits - 1) - owner(first) + 1;
  }
  // Partials unit u waits for: every writer of every row in it.
  __device__ int64_t partials_of_unit(int64_t u) const {
    int64_t count = 0;
    for (int64_t row = unit_first_row(u); row < unit_end_row(u); ++row) count += writers_of_row(row);
    return count;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// The epilogue, run by one warp.

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

// What a unit epilogue reads and writes; T is the type of bias and output.
template <typename T> struct Epilogue {
  using A = acc_t<T>;
  Layout layout;
  const A* partials;   // [B*C*splits], sparse: see Layout
  A* sums;             // [B, C]: written when splits > 1 (it is `partials` otherwise)
  bool sums_only;
  int64_t c_out;
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

// Four consecutive accumulation-type values at p (count of them valid); one or two 16-byte loads when aligned.
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

// Sum of one row's partial slots, over the writers [w_lo, w_hi), by one lane, four loads in flight.
template <typename A>
__device__ __forceinline__ A row_slots_sum(const Layout& L, const A* partials, int64_t row, int64_t first,
                                           int64_t w_lo, int64_t w_hi, int64_t w_step) {
  A acc[4] = {A(0), A(0), A(0), A(0)};
  int64_t w = w_lo;
  for (; w + 3 * w_step < w_hi; w += 4 * w_step) {
    A v[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t own = L.begin(w + i * w_step);
      v[i] = own == L.begin(w + i * w_step + 1) ? A(0) : __ldcg(partials + row * L.splits + (own > first ? own - first : 0));
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[i] += v[i];
  }
  for (; w < w_hi; w += w_step) {
    const int64_t own = L.begin(w);
    if (own != L.begin(w + 1)) acc[0] += __ldcg(partials + row * L.splits + (own > first ? own - first : 0));
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// Unit u = (b, g): its rows' sums, their share of the GEMM, and, if it is the batch's last unit, the logsumexp.
// Warp-uniform: every lane calls it. unit_sums is this warp's scratch (kMaxUnitRows values). Written for latency:
// it runs after the last reads of x for the last units, so loads are issued many at a time (16-byte, unrolled).
template <typename T>
__device__ __forceinline__ void unit_epilogue(const Epilogue<T>& e, int64_t u, int lane, acc_t<T>* unit_sums) {
  using A = acc_t<T>;
  const Layout& L = e.layout;
  const int64_t b = u / L.groups, g = u % L.groups;
  const int64_t k0 = g * L.unit_rows;
  const int64_t k_count = imin(L.unit_rows, L.channels - k0);
  // 1. Row sums. Few writers per row: a lane per row; many: all lanes on each row, then a butterfly.
  const int64_t first_row = b * L.channels + k0;
  if (L.writers_of_row(first_row) <= 16) {
    for (int64_t t = lane; t < k_count; t += 32) {
      const int64_t row = first_row + t, first = L.first_item_of_row(row);
      const A s = row_slots_sum(L, e.partials, row, first, L.owner(first), L.owner(first + L.splits - 1) + 1, 1);
      unit_sums[t] = s;
      if (L.splits > 1) e.sums[row] = s;
    }
  } else {
    for (int64_t t = 0; t < k_count; ++t) {
      const int64_t row = first_row + t, first = L.first_item_of_row(row);
      const A s = warp_sum(
          row_slots_sum(L, e.partials, row, first, L.owner(first) + lane, L.owner(first + L.splits - 1) + 1, 32));
      if (lane == 0) {
        unit_sums[t] = s;
        if (L.splits > 1) e.sums[row] = s;
      }
    }
  }
  __syncwarp();
  if (e.sums_only) return;

  // 2. This unit's share of the GEMM: each lane owns 4 consecutive outputs at a time.
  Lse<A> state{-INFINITY, A(0)};
  for (int64_t n = 4 * lane; n < e.c_out; n += 128) {
    const int64_t valid = imin(4, e.c_out - n);
    A dot[4] = {A(0), A(0), A(0), A(0)};
    const A* w = e.wsum + k0 * e.c_out + n;
#pragma unroll 4
    for (int64_t k = 0; k < k_count; ++k) {
      A v[4];
      load4(w + k * e.c_out, valid, v);
      const A s = unit_sums[k];
#pragma unroll
      for (int i = 0; i < 4; ++i) dot[i] += s * v[i];
    }
    if (L.groups == 1) {
      for (int i = 0; i < valid; ++i) lse_push(state, logit(e, n + i, dot[i]));
    } else {
      for (int i = 0; i < valid; ++i) e.zpart[u * e.c_out + n + i] = dot[i];
    }
  }
  __syncwarp();  // unit_sums is free again
  if (L.groups > 1) {
    // 3. The batch's last unit adds up every unit's share, in unit order.
    __threadfence();
    __syncwarp();
    int last = 0;
    if (lane == 0) {
      last = atomicAdd(e.batch_tickets + b, 1) == L.groups - 1;
      if (last) e.batch_tickets[b] = 0;
    }
    if (!__shfl_sync(0xffffffffu, last, 0)) return;
    __threadfence();
    for (int64_t n = 4 * lane; n < e.c_out; n += 128) {
      const int64_t valid = imin(4, e.c_out - n);
      A dot[4] = {A(0), A(0), A(0), A(0)};
      const A* z = e.zpart + b * L.groups * e.c_out + n;
#pragma unroll 4
      for (int64_t q = 0; q < L.groups; ++q) {
        A v[4];
        load4(z + q * e.c_out, valid, v);
#pragma unroll
        for (int i = 0; i < 4; ++i) dot[i] += v[i];
      }
      for (int i = 0; i < valid; ++i) lse_push(state, logit(e, n + i, dot[i]));
    }
  }
  state = warp_lse(state);
  if (lane == 0) e.out[b] = from_acc<T>(A(10) * (state.max_value + log(state.scaled_sum)));
}

// A warp's running count of the partials it wrote for one unit; sent as one ticket when the unit changes.
template <typename T> struct TicketCounter {
  const Epilogue<T>& e;
  int* unit_tickets;
  int extra;  // what each unit waits for beyond its partials (1 when this launch folds the weight)
  int lane;
  acc_t<T>* scratch;
  bool enabled;  // false for sum_hw with whole rows as items: its partials are the final sums
  int64_t unit = -1;
  int pending = 0;

  __device__ __forceinline__ void flush() {
    if (!enabled) return;
    if (pending == 0) return;
    __threadfence();
    __syncwarp();
    int last = 0;
    if (lane == 0) {
      const Layout& L = e.layout;
      const int64_t expected = extra + L.partials_of_unit(unit);
      last = atomicAdd(unit_tickets + unit, pending) + pending == expected;
      if (last) unit_tickets[unit] = 0;
    }
    pending = 0;
    if (__shfl_sync(0xffffffffu, last, 0)) {
      __threadfence();
      unit_epilogue(e, unit, lane, scratch);
    }
  }
  // Rows [first, end) each received one partial from this warp.
  __device__ __forceinline__ void add_rows(int64_t first, int64_t end) {
    if (!enabled) return;
    const Layout& L = e.layout;
    while (first < end) {
      const int64_t u = L.unit_of_row(first);
      const int64_t stop = imin(end, L.unit_end_row(u));
      if (u != unit) {
        flush();
        unit = u;
      }
      pending += static_cast<int>(stop - first);
      first = stop;
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Reading x.

// Row layout: every plane is contiguous. With splits == 1 whole rows are items, read four at a time.
template <typename T>
__device__ __forceinline__ void read_rows(const FusedArgs& a, TicketCounter<T>& tickets, int64_t begin, int64_t end, int lane) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  A* partials = static_cast<A*>(a.partials);
  const int64_t splits = a.plan.splits;
  auto row_ptr = [&](int64_t row) {
    return x + (row / a.channels) * a.stride_b + (row % a.channels) * a.stride_c;
  };
  if (splits == 1) {
    for (int64_t row = begin; row < end; row += kRowsAtOnce) {
      const T* ptrs[kRowsAtOnce];
#pragma unroll
      for (int r = 0; r < kRowsAtOnce; ++r) ptrs[r] = row + r < end ? row_ptr(row + r) : nullptr;
      A s[kRowsAtOnce];
      warp_rows_sum<T, kRowsAtOnce>(ptrs, a.plane, lane, s);
      if (lane == 0) {
#pragma unroll
        for (int r = 0; r < kRowsAtOnce; ++r)
          if (ptrs[r] != nullptr) partials[row + r] = s[r];
      }
      tickets.add_rows(row, imin(row + kRowsAtOnce, end));
    }
    return;
  }
  for (int64_t item = begin; item < end;) {
    const int64_t row = item / splits, first = row * splits;
    const int64_t stop = imin(end, first + splits);
    const int64_t e0 = (item - first) * a.plan.chunk;
    const int64_t e1 = imin((stop - first) * a.plan.chunk, a.plane);
    const A s = warp_chunk_sum(row_ptr(row) + e0, e1 - e0, lane);
    if (lane == 0) partials[row * splits + (item - first)] = s;
    tickets.add_rows(row, row + 1);
    item = stop;
  }
}

// Channels-last layout: a group is channels_per_item channels of one batch; lanes form a [position, channel] grid
// with kVec channels per lane (1, or 16 bytes' worth); a segment is a contiguous run of positions.
template <typename T, int kVec>
__device__ __forceinline__ void read_channels_last(const FusedArgs& a, TicketCounter<T>& tickets, int64_t begin, int64_t end, int lane,
                                   acc_t<T>* scratch) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  const int channel_lanes = static_cast<int>(plan.channels_per_item / kVec);
  const int position_lanes = 32 / channel_lanes;
  const int channel_lane = lane % channel_lanes, position_lane = lane / channel_lanes;
  const bool active = position_lane < position_lanes;
  A* partials = static_cast<A*>(a.partials);
  for (int64_t item = begin; item < end;) {
    const int64_t group = item / plan.splits, first = group * plan.splits;
    const int64_t stop = imin(end, first + plan.splits);
    const int64_t b = group / plan.channel_blocks;
    const int64_t c_begin = (group % plan.channel_blocks) * plan.channels_per_item;
    const int64_t c_end = imin(c_begin + plan.channels_per_item, a.channels);
    const int64_t c = c_begin + static_cast<int64_t>(channel_lane) * kVec;
    const int64_t p_end = imin((stop - first) * plan.chunk, a.plane);
    A acc[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) acc[v] = A(0);
    if (active && c < c_end) {
      const T* base = static_cast<const T*>(a.x) + b * a.stride_b + c;
      const int64_t step = position_lanes;
      int64_t p = (item - first) * plan.chunk + position_lane;
      if constexpr (kVec > 1) {
        for (; p + (kLoadsInFlight - 1) * step < p_end; p += kLoadsInFlight * step) {
          uint4 v[kLoadsInFlight];
#pragma unroll
          for (int u = 0; u < kLoadsInFlight; ++u)
            v[u] = __ldcs(reinterpret_cast<const uint4*>(base + (p + u * step) * a.stride_p));
#pragma unroll
          for (int u = 0; u < kLoadsInFlight; ++u)
#pragma unroll
            for (int k = 0; k < kVec; ++k) acc[k] += vec_elem<T>(v[u], k);
        }
        for (; p < p_end; p += step) {
          const uint4 v = __ldcs(reinterpret_cast<const uint4*>(base + p * a.stride_p));
#pragma unroll
          for (int k = 0; k < kVec; ++k) acc[k] += vec_elem<T>(v, k);
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
    // Combine position lanes in a fixed order through this warp's scratch: [position_lanes][channels_per_item].
    const int64_t width = plan.channels_per_item;
    if (active) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) scratch[position_lane * width + channel_lane * kVec + k] = acc[k];
    }
    __syncwarp();
    for (int64_t t = lane; t < c_end - c_begin; t += 32) {
      A s = A(0);
      for (int l = 0; l < position_lanes; ++l) s += scratch[l * width + t];
      partials[(b * a.channels + c_begin + t) * plan.splits + (item - first)] = s;
    }
    __syncwarp();
    tickets.add_rows(b * a.channels + c_begin, b * a.channels + c_end);
    item = stop;
  }
}

// weight [C, C_out, kernel_area] -> wsum rows of channel group g (whole block); then each batch's unit (b, g) is
// told, and the units this completes run their epilogues, one warp each.
template <typename T>
__device__ __forceinline__ void fold_weight_group(const FusedArgs& a, const Epilogue<T>& e, int64_t g, acc_t<T>* warp_scratch,
                                  int64_t* completed, int* completed_count) {
  using A = acc_t<T>;
  const Layout& L = e.layout;
  const T* weight = static_cast<const T*>(a.weight);
  A* wsum = static_cast<A*>(a.wsum);
  const int64_t k0 = g * L.unit_rows;
  const int64_t count = imin(L.unit_rows, a.channels - k0) * a.c_out;
  for (int64_t i = threadIdx.x; i < count; i += kBlockThreads) {
    const int64_t idx = k0 * a.c_out + i;
    const T* taps = weight + idx * a.kernel_area;
    A s = A(0);
    for (int64_t q = 0; q < a.kernel_area; ++q) s += to_acc(taps[q]);
    wsum[idx] = s;
  }
  __threadfence();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int64_t b0 = 0; b0 < a.batch; b0 += kBlockThreads) {
    __syncthreads();  // wsum is written block-wide (first round); the previous round's epilogues are done
    if (threadIdx.x == 0) *completed_count = 0;
    __syncthreads();
    const int64_t b = b0 + threadIdx.x;
    if (b < a.batch) {
      const int64_t u = b * L.groups + g;
      const int64_t expected = 1 + L.partials_of_unit(u);  // +1: this block's weight fold
      if (atomicAdd(a.unit_tickets + u, 1) + 1 == expected) {
        a.unit_tickets[u] = 0;
        completed[atomicAdd(completed_count, 1)] = u;
      }
    }
    __syncthreads();
    for (int i = warp; i < *completed_count; i += kWarpsPerBlock) {
      __threadfence();
      unit_epilogue(e, completed[i], lane, warp_scratch);
    }
  }
}

template <typename T>
__device__ __forceinline__ Epilogue<T> fused_epilogue_args(const FusedArgs& a) {
  using A = acc_t<T>;
  const LaunchPlan& plan = a.plan;
  Epilogue<T> e;
  const bool rows = a.layout == XLayout::kRows;
  e.layout = Layout{a.channels, plan.splits, plan.items, plan.reduce_blocks * kWarpsPerBlock,
                    rows ? 1 : plan.channels_per_item, rows ? a.channels : plan.channel_blocks,
                    plan.unit_rows, plan.groups};
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
  __shared__ __align__(16) unsigned char scratch[kWarpsPerBlock][kWarpScratchBytes];
  __shared__ int64_t completed[kBlockThreads];
  __shared__ int completed_count;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  A* warp_scratch = reinterpret_cast<A*>(scratch[warp]);
  const Epilogue<T> e = fused_epilogue_args<T>(a);
  if (blockIdx.x < a.plan.wsum_blocks) {
    fold_weight_group<T>(a, e, blockIdx.x, warp_scratch, completed, &completed_count);
    return;
  }
  const int64_t w = (static_cast<int64_t>(blockIdx.x) - a.plan.wsum_blocks) * kWarpsPerBlock + warp;
  const int64_t begin = e.layout.begin(w), end = e.layout.begin(w + 1);
  TicketCounter<T> tickets{e, a.unit_tickets, a.plan.wsum_blocks > 0 ? 1 : 0, lane, warp_scratch,
                           !(a.mode == Mode::kSumsOnly && a.plan.splits == 1)};
  if constexpr (kLayout == XLayout::kRows) {
    read_rows<T>(a, tickets, begin, end, lane);
  } else {
    constexpr int kVec = 16 / sizeof(T);
    if (a.plan.vec == kVec) {
      read_channels_last<T, kVec>(a, tickets, begin, end, lane, warp_scratch);
    } else {
      read_channels_last<T, 1>(a, tickets, begin, end, lane, warp_scratch);
    }
  }
  tickets.flush();
}

// gemm_lse: warp u runs unit u's epilogue from ready-made sums (one slot per row).
template <typename A>
__global__ void __launch_bounds__(kBlockThreads) gemm_lse_kernel(const __grid_constant__ GemmLseArgs a) {
  __shared__ __align__(16) unsigned char scratch[kWarpsPerBlock][kWarpScratchBytes];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t u = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (u >= a.batch * a.groups) return;
  const int64_t rows = a.batch * a.channels;
  Epilogue<A> e;
  e.layout = Layout{a.channels, 1, rows, rows, 1, a.channels, a.unit_rows, a.groups};
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
  unit_epilogue(e, u, lane, reinterpret_cast<A*>(scratch[warp]));
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
  const unsigned blocks = static_cast<unsigned>((args.batch * args.groups + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (args.is_double) {
    gemm_lse_kernel<double><<<blocks, kBlockThreads, 0, stream>>>(args);
  } else {
    gemm_lse_kernel<float><<<blocks, kBlockThreads, 0, stream>>>(args);
  }
  return cudaGetLastError();
}

}  // namespace fusedlse
