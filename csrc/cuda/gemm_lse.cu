// The gemm_lse op's kernel: the fused launch's epilogue (kernels/epilogue.cuh) run from ready-made sums, one block
// per unit. Only CUDA headers are included: see kernels.h.

#include "kernels.h"
#include "kernels/dtype.cuh"
#include "kernels/load.cuh"
#include "kernels/reduce.cuh"
#include "kernels/units.cuh"
#include "kernels/epilogue.cuh"

namespace fusedlse {
namespace {

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

}  // namespace

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
