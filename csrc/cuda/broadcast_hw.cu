// broadcast_hw: a pure write, so 16-byte stores, several per thread in flight, one trip of them per thread (the host
// sizes the grid). Plain stores: streaming ones (st.global.cs) wrote 1 GiB at 3.98 TB/s where plain ones reached
// 4.60 in a one-shot grid (H200, bench/experiments/write_stores.cu). I is the index type: 32-bit when every element
// index fits (integer division is then several times cheaper, and a division per vector must stay below the store
// rate).
// The backward's write of grad_x. Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

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
      if (i < vectors) reinterpret_cast<uint4*>(out)[i] = v[u];
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

}  // namespace

cudaError_t launch_broadcast_hw(const BroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_broadcast_typed<decltype(t)>(args, stream); });
}

}  // namespace fusedlse
