// Reading channels-last x by rows of channels (the channel-rows reader, ChannelRowsArgs): a block takes one batch's
// chunk of pixels, each pixel a row of C adjacent channels, and adds every channel down the chunk. Neighbouring
// threads read neighbouring channels, so each warp's loads are one contiguous run of memory whatever C is, aligned
// or not. Where pixels follow each other, the vector walk reads each batch as one run of 16-byte vectors instead.
// The kernels are in ../split.cu; channel_vectors_sums and pixel_vectors_sums are the bodies of two of them.
#pragma once

#include "../launch.cuh"
#include "load.cuh"

namespace fusedlse {
namespace {

// Loads a thread keeps in flight down its column: one trip, all issued before its adds (16-bit scalars: twice as
// many, for the same bytes).
template <typename T> constexpr int kColumnLoads = sizeof(T) == 2 ? 16 : 8;

// The sum of the `count` elements first, first + step, first + 2 step, ... in trips of kColumnLoads loads: whole
// trips as they are, the last partial one stopping at its end (`break`), both inside one loop, the form that keeps
// ptxas from placing adds between a trip's loads (read_plane_lanes.cuh). Added in a fixed order: reproducible.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ acc_t<T> column_share(const T* first, int64_t step, int64_t count) {
  using A = acc_t<T>;
  constexpr int kLoads = kColumnLoads<T>;
  A acc = A(0);
  const auto load = [&](int i) { return load_once<kEvictFirst>(first + i * step); };
  const auto add = [&](T v) { acc += to_acc(v); };
  for (; count > 0; count -= kLoads, first += kLoads * step) {
    if (count >= kLoads) {
      load_trip<T, kLoads>(kLoads, load, add);
    } else {
      load_trip<T, kLoads>(static_cast<int>(count), load, add);
    }
  }
  return acc;
}

// The sums of up to kWideLoads channels c, c + stride, c + 2 stride, ... (`channels` of them) over the pixels
// [0, count) at `row`, row + pixel_step, ...: a pixel's loads issued together, then added.
template <typename T, int kWideLoads, bool kEvictFirst>
__device__ __forceinline__ void wide_columns_share(const T* row, int64_t pixel_step, int64_t count, int stride,
                                                   int channels, acc_t<T> (&acc)[kWideLoads]) {
#pragma unroll
  for (int j = 0; j < kWideLoads; ++j) acc[j] = acc_t<T>(0);
  for (; count > 0; --count, row += pixel_step) {
    int j = 0;
    load_trip<T, kWideLoads>(channels, [&](int i) { return load_once<kEvictFirst>(row + i * stride); },
                             [&](T v) { acc[j++] += to_acc(v); });
  }
}

// The vector walk's share of one slot (ChannelRowsArgs::period_vectors): acc[i] += element i of vectors[k],
// vectors[k + step], ... below `end`, in trips of kColumnLoads<float> loads issued together, then added in order.
template <typename T, bool kEvictFirst>
__device__ __forceinline__ void slot_share(const uint4* vectors, int64_t k, int64_t end, int64_t step,
                                           acc_t<T> (&acc)[16 / sizeof(T)]) {
  constexpr int kLoads = kColumnLoads<float>;
  for (; k < end; k += kLoads * step) {
    const int count = static_cast<int>(imin(kLoads, (end - k + step - 1) / step));
    load_trip<uint4, kLoads>(count, [&](int i) { return load_once<kEvictFirst>(vectors + k + i * step); },
                             [&](const uint4& v) {
#pragma unroll
                               for (int e = 0; e < 16 / static_cast<int>(sizeof(T)); ++e) acc[e] += vec_elem<T>(v, e);
                             });
  }
}

// The channel-rows reader's vector walk (ChannelRowsArgs::period_vectors), a block per item at a time: an item's
// elements (its pixels' channels, one run in memory) by 16-byte loads whatever C and x's alignment. Vector k of a
// batch (counted from its first 16-byte boundary) and vector k + Q, Q = period_vectors, hold the same channels, so
// slot s (copy s / Q, position j = s % Q of the period) adds the item's vectors first + j + (copy + copies m) Q into
// one accumulator per element of a vector, and channel c's sum is the accumulators that hold it, in a fixed order,
// plus the item's elements outside its whole vectors (fewer than a vector's at each end). The copies keep threads
// busy where a period has fewer vectors than the block has threads; neighbouring slots read neighbouring vectors.
template <typename T>
__device__ __forceinline__ void channel_vectors_sums(ChannelRowsArgs a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  // [copies][Q * kVec]: a copy's entry e holds channel (c0 + e) % C, c0 the channel of the item's first vector.
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* slot_sums = reinterpret_cast<A*>(shared_bytes);
  __shared__ A end_values[2 * kVec];  // the item's elements outside its vectors, and their channels
  __shared__ int end_channels[2 * kVec];
  const T* x = static_cast<const T*>(a.x);
  A* out = static_cast<A*>(a.out);
  const int64_t channels = a.channels, period = a.period_vectors;
  const int64_t slots = period * a.copies, copy_entries = period * kVec;  // copy_entries: a multiple of C
  const int64_t items = a.batch * a.chunks;
  const int t = threadIdx.x;
  // Every thread runs the same items, so the syncs see the whole block.
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t b = a.chunks == 1 ? item : item / a.chunks, chunk = item - b * a.chunks;
    const T* batch_x = x + b * a.stride_b;
    // The item's elements [first, end) of its batch, and its whole vectors [k_first, k_end) from the batch's first
    // 16-byte boundary, `head` elements in: elements [from, to).
    const int64_t first = chunk * a.chunk_pixels * channels;
    const int64_t end = imin(a.pixels, (chunk + 1) * a.chunk_pixels) * channels;
    const int64_t head = ((16 - (reinterpret_cast<uintptr_t>(batch_x) & 15)) & 15) / sizeof(T);
    const int64_t k_first = first <= head ? 0 : (first - head + kVec - 1) / kVec;
    const int64_t k_end = imax(k_first, end < head ? 0 : (end - head) / kVec);
    const int64_t from = head + k_first * kVec, to = head + k_end * kVec;
    // Outside the vectors: [first, first + before) and [after_first, end), all of [first, end) where there are none
    // (fewer than 2 kVec elements then).
    const bool any_vectors = k_end > k_first;
    const int before = static_cast<int>((any_vectors ? from : end) - first);
    const int64_t after_first = any_vectors ? to : end;
    const int ends = before + static_cast<int>(end - after_first);
    if (t < ends) {
      const int64_t e = t < before ? first + t : after_first + (t - before);
      end_values[t] = to_acc(batch_x[e]);
      end_channels[t] = static_cast<int>(e % channels);
    }
    const uint4* vectors = reinterpret_cast<const uint4*>(batch_x + head);
    for (int64_t slot = t; slot < slots; slot += kSplitThreads) {
      const int64_t copy = slot / period, position = slot - copy * period;
      A acc[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] = A(0);
      with_evict_first(a.evict_first, [&](auto evict_first) {
        slot_share<T, decltype(evict_first)::value>(vectors, k_first + position + copy * period, k_end, slots, acc);
      });
#pragma unroll
      for (int e = 0; e < kVec; ++e) slot_sums[slot * kVec + e] = acc[e];
    }
    __syncthreads();
    const int64_t c0 = from % channels;
    for (int64_t c = t; c < channels; c += kSplitThreads) {
      const int64_t r = c >= c0 ? c - c0 : c - c0 + channels;  // the first entry of a copy that holds channel c
      A total = A(0);
      for (int64_t copy = 0; copy < a.copies; ++copy) {
        for (int64_t e = r; e < copy_entries; e += channels) total += slot_sums[copy * copy_entries + e];
      }
      for (int i = 0; i < ends; ++i) {
        if (end_channels[i] == c) total += end_values[i];
      }
      out[(b * channels + c) * a.chunks + chunk] = total;
    }
    __syncthreads();  // the next item rewrites slot_sums and the ends
  }
  end_after_previous_grid(a.beside_previous);
}

// The channel-rows reader's pixel-vector walk (ChannelRowsArgs::pixel_vectors): each pixel whole 16-byte vectors from a
// 16-byte boundary (plan::pixel_vectors_walk): small planes, where a block per item and its syncs cost more than the
// item's loads (docs/limits.md sections 71 and 72), and float64 planes of many channels, which the scalar walk and
// torch's reduction read at 0.6-0.8 of the flat read (section 74). A thread per (batch, chunk of pixels, vector
// position of a pixel), neighbouring threads on neighbouring vectors: that vector of each of the chunk's pixels,
// slot_share's loads in flight, summed in registers in pixel order (the same sums every run). One chunk: its
// channels' sums stored straight out as 16-byte vectors, no shared memory, no sync; several: each channel's chunk
// sum at out [B, C, chunks], which read_channel_rows then adds in chunk order (none for one). kChunked:
// ChannelRowsArgs::pixel_chunks, a kernel of its own (the chunks' index math took the one-chunk walk from 64 to 76
// registers, sm_90).
template <typename T, bool kChunked>
__device__ __forceinline__ void pixel_vectors_sums(ChannelRowsArgs a) {
  using A = acc_t<T>;
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kOutVectors = kVec * static_cast<int>(sizeof(A)) / 16;
  static_assert(kOutVectors >= 1 && 16 % sizeof(A) == 0, "whole 16-byte vectors of sums");
  start_after_previous_grid(a.beside_previous);  // beside the W.sum launch: then no fold (read_channel_rows)
  fold_weight<T>(a.fold);
  const int64_t row_vectors = a.channels / kVec, batch_vectors = a.stride_b / kVec;
  const int64_t items = a.batch * a.chunks * row_vectors;
  const uint4* x = static_cast<const uint4*>(a.x);
  A* out = static_cast<A*>(a.out);
  for (int64_t item = int64_t{blockIdx.x} * kSplitThreads + threadIdx.x; item < items;
       item += int64_t{gridDim.x} * kSplitThreads) {
    int64_t b, v, chunk = 0;
    if constexpr (kChunked) {
      // 32-bit divisions (items < 2^31, read_channel_rows): 64-bit ones spilled on sm_89 (64 registers there)
      const auto item32 = static_cast<uint32_t>(item), row_vectors32 = static_cast<uint32_t>(row_vectors);
      const uint32_t piece = item32 / row_vectors32, chunks32 = static_cast<uint32_t>(a.chunks);  // b x chunks + chunk
      v = item32 - piece * row_vectors32;
      b = piece / chunks32;
      chunk = piece - static_cast<uint32_t>(b) * chunks32;
    } else {
      b = item / row_vectors;
      v = item - b * row_vectors;
    }
    const int64_t begin = chunk * a.chunk_pixels, end = kChunked ? imin(a.pixels, begin + a.chunk_pixels) : a.pixels;
    A acc[kVec];
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[e] = A(0);
    with_evict_first(a.evict_first, [&](auto evict_first) {
      slot_share<T, decltype(evict_first)::value>(x + b * batch_vectors, begin * row_vectors + v, end * row_vectors,
                                                  row_vectors, acc);
    });
    if constexpr (kChunked) {
      A* to = out + (b * a.channels + v * kVec) * a.chunks + chunk;
#pragma unroll
      for (int e = 0; e < kVec; ++e) to[e * a.chunks] = acc[e];
      continue;
    }
    // 16-byte aligned: C a whole number of x's vectors, so of the sums' too, and the allocation aligned.
    uint4* to = reinterpret_cast<uint4*>(out + b * a.channels + v * kVec);
#pragma unroll
    for (int i = 0; i < kOutVectors; ++i) {
      uint4 packed;
      A* lanes = reinterpret_cast<A*>(&packed);
#pragma unroll
      for (int e = 0; e < 16 / static_cast<int>(sizeof(A)); ++e) lanes[e] = acc[i * (16 / sizeof(A)) + e];
      to[i] = packed;
    }
  }
  end_after_previous_grid(a.beside_previous);
}

}  // namespace
}  // namespace fusedlse
