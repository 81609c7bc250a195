// Launching the split strategy's kernels one after another with programmatic dependent launch (sm_90 and later):
// each grid is allowed to start while the grid ahead of it in the stream finishes, and its threads wait for that
// grid's end and its writes (griddepcontrol.wait) before touching memory. What overlaps is the launch itself and the
// blocks' start, a few microseconds per kernel that a small problem's 3 or 4 kernels otherwise pay in a row (the
// profiler put the kernels of r02 at 12 us of its 26). On sm_89 the launch is an ordinary one and the wait compiles
// to nothing. Also how many lanes a kernel of a lane group per row gives each row, and how many blocks of a kernel
// fit on a multiprocessor. Only CUDA headers are included: see kernels.h.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace fusedlse {
namespace {

// The first statement of a kernel launched by launch_after_previous: wait for the grid ahead of it in the stream
// (and transitively every earlier one) to end and its writes to be visible, then let the next grid launch. No
// thread touches what an earlier grid of ours writes before it; a kernel may read the caller's own tensors before
// it (they were ready before the first grid of ours passed its own wait).
__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// A kernel launched by launch_after_previous that may run beside the grid ahead of it (`beside`: that grid writes
// nothing this one reads or writes; the split strategy's reader of x after the W.sum launch) calls these two for
// wait_for_previous_grid: with `beside`, it reads at once and waits (and lets the next grid launch) only at its end.
// Its start is gated by the trigger of the grid ahead, which that grid pulls after its own wait: the grids before
// that one (the caller's writes of x) have ended, their writes visible. Its end still implies the end of the grid
// ahead, so the next grid, which waits for this one only, sees W.sum. The next grid is not let in early: resident
// beside the reader, the epilogue's blocks made it slower (H200, triggered at the reader's start: r13's forward 22.6
// -> 28.1 us, r46 22.0 -> 26.0; triggered at its end, 21.5 and 20.0).
__device__ __forceinline__ void start_after_previous_grid(bool beside) {
  if (!beside) wait_for_previous_grid();
}
__device__ __forceinline__ void end_after_previous_grid(bool beside) {
  if (beside) wait_for_previous_grid();
}

// The same for a kernel with nothing after its main loop (any code there, a wait included, made ptxas spill the tap
// reader's registers under its cap: taps.cu): with `beside`, block 0 alone waits, at its start, and the grid's end
// still implies the end of the grid ahead; the other blocks only let the next grid launch.
__device__ __forceinline__ void start_beside_previous_grid(bool beside) {
  if (!beside || blockIdx.x == 0) {
    wait_for_previous_grid();
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// f(std::integral_constant<int, L>) for L, the fewest lanes of 1, 2, 4, 8, 16 and 32 that cover `width` values (32
// past that): how many lanes a row-per-group kernel gives each row.
template <typename F> auto with_row_lanes(int64_t width, F&& f) {
  if (width <= 1) return f(std::integral_constant<int, 1>{});
  if (width <= 2) return f(std::integral_constant<int, 2>{});
  if (width <= 4) return f(std::integral_constant<int, 4>{});
  if (width <= 8) return f(std::integral_constant<int, 8>{});
  if (width <= 16) return f(std::integral_constant<int, 16>{});
  return f(std::integral_constant<int, 32>{});
}

// Resident blocks per multiprocessor of `kernel` with `threads` threads and shared_bytes of dynamic shared memory,
// from the occupancy calculator; 1 where it fails or finds none (a launch of one block per multiprocessor still runs).
template <typename... Params>
int resident_blocks_per_sm(void (*kernel)(Params...), int threads, size_t shared_bytes = 0) {
  int blocks = 0;
  const cudaError_t status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, shared_bytes);
  return status == cudaSuccess && blocks > 0 ? blocks : 1;
}

// Whether the current device starts a grid before the one ahead of it ends (compute capability 9.0 and later), read
// once per device: every launch asks.
inline bool device_overlaps_launches() {
  constexpr int kKnownDevices = 64;
  static std::atomic<signed char> known[kKnownDevices] = {};  // 0: not read yet, 1: no, 2: yes
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (device >= 0 && device < kKnownDevices) {
    const signed char seen = known[device].load(std::memory_order_relaxed);
    if (seen != 0) return seen == 2;
  }
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
  if (device >= 0 && device < kKnownDevices) known[device].store(major >= 9 ? 2 : 1, std::memory_order_relaxed);
  return major >= 9;
}

// kernel<<<grid, block, shared_bytes, stream>>>(args...), allowed to start before the grid ahead of it ends where
// the device can; the kernel's first statement must be wait_for_previous_grid().
template <typename... Params, typename... Args>
cudaError_t launch_after_previous_with_shared(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                                              cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &overlap;
  config.numAttrs = device_overlaps_launches() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// The same without dynamic shared memory.
template <typename... Params, typename... Args>
cudaError_t launch_after_previous(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                                  Args&&... args) {
  return launch_after_previous_with_shared(kernel, grid, block, 0, stream, std::forward<Args>(args)...);
}

}  // namespace
}  // namespace fusedlse
