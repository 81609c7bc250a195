// The backward's write of grad_x, with padding as without (BroadcastArgs::cells): the kernels' launch bounds and
// their launcher; their bodies are in kernels/write_broadcast.cuh. Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/cut.cuh"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/write_broadcast.cuh"
#include "launch.cuh"

namespace fusedlse {
namespace {

// The launch of write_broadcast_values (kernels/write_broadcast.cuh).
template <typename T, typename I, bool kChannelsLast, bool kCut>
__global__ void __launch_bounds__(kBlockThreads) broadcast_hw_kernel(const __grid_constant__ BroadcastArgs a) {
  write_broadcast_values<T, I, kChannelsLast, kCut>(a);
}

// The launch of write_cut_rows (kernels/write_broadcast.cuh).
template <typename T>
__global__ void __launch_bounds__(kBlockThreads) broadcast_cut_rows_kernel(const __grid_constant__ BroadcastArgs a) {
  write_cut_rows<T>(a);
}

template <typename T, typename I>
auto broadcast_kernel_for(bool channels_last, bool cut) {
  if (cut) return channels_last ? broadcast_hw_kernel<T, I, true, true> : broadcast_hw_kernel<T, I, false, true>;
  return channels_last ? broadcast_hw_kernel<T, I, true, false> : broadcast_hw_kernel<T, I, false, false>;
}

// 32-bit indices while every index the kernel forms (up to total + one grid step of elements) stays below 2^32.
bool broadcast_fits_32_bits(const BroadcastArgs& a) {
  const int64_t total = a.batch * a.channels * a.plane;
  return total < (int64_t{1} << 31) && a.blocks * kBlockThreads * kBroadcastVectorsPerThread * 16 < (int64_t{1} << 31);
}

template <typename T>
cudaError_t launch_broadcast_typed(const BroadcastArgs& a, cudaStream_t stream) {
  const bool cut = a.cells != nullptr;
  if (cut && a.rows_per_warp > 0) {
    broadcast_cut_rows_kernel<T><<<static_cast<unsigned>(a.blocks), kBlockThreads, 0, stream>>>(a);
    return cudaGetLastError();
  }
  const auto kernel = broadcast_fits_32_bits(a) ? broadcast_kernel_for<T, uint32_t>(a.channels_last, cut)
                                                : broadcast_kernel_for<T, uint64_t>(a.channels_last, cut);
  kernel<<<static_cast<unsigned>(a.blocks), kBlockThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_broadcast_hw(const BroadcastArgs& args, cudaStream_t stream) {
  return with_element_type(args.kind, cudaErrorInvalidValue,
                           [&](auto t) { return launch_broadcast_typed<decltype(t)>(args, stream); });
}

}  // namespace fusedlse
