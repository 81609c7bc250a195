// Planes whose elements lie apart in storage they share with bytes that are not x (the public sweep's sliced_hw rows:
// x = big[:, :, 1:, 2:]), read into one sum a plane: which schedule of loads reads them at DRAM speed. On the H100,
// fusedlse's plane-lanes reader took r25's storage at 2.91 TB/s where the compiled shortcut's reduction took 3.15, and
// r59's at 2.83 (docs/limits.md section 92). Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/strided_planes.cu -o /tmp/strided_planes && /tmp/strided_planes
//
// (-DLOAD_POLICY=0, 1 or 2: the elements' loads by __ldcs, __ldg or ld.global.L1::evict_last; 1 unless set. The runs
// of section 93 took __ldcs.)
//
// The layouts (elements of a plane at row * row_stride + column * column_stride from the plane's first, planes
// plane_stride apart, every plane at element 5 of its storage):
//   r25: [10253 x 127] planes of 333 x 1 bfloat16, rows 3 apart, planes 1002 apart (2.61 GB of storage);
//   r59: [9346 x 1570] planes of 3 x 1 float64, rows 3 apart, planes 12 apart (1.41 GB);
//   r58: [125565 x 69] planes of 2 x 3 float16, rows 5 apart, planes 15 apart (260 MB);
//   r26: [500741 x 18] planes of 3 x 6 float16, rows 8 apart, planes 32 apart (577 MB).
// The schedules:
//   warp_plane:  a warp a plane, lanes over its elements, all of a lane's loads (up to kLoads) in flight before its
//                adds: fusedlse's one-row walk with 32 lanes (read_plane_lanes.cuh lane_share), a persistent grid of
//                the resident blocks (kPersistent) or a warp for every plane; kMinBlocks 8 caps it at 32 registers;
//   block_plane: a block of kBlock threads a plane, every load of a thread in flight (the compiled reduction's form);
//   warp_pieces: kPieces warps a plane, each a piece of it, a block of 256 threads holding 8 / kPieces planes (the
//                plane-lanes reader's pieces in a block, which it makes today only where planes are few);
//   thread_plane: a thread a plane (fusedlse's one-lane walk for tiny planes), persistent or not;
//   warp_group:  a warp takes 32 neighbouring planes and loads their elements in order, lane l the elements
//                l, l + 32, ... of the group's 32 x n (so each load of the warp covers neighbouring bytes), stages
//                them in shared memory, and lane l adds plane l's n;
//   flat:        the whole storage as 16-byte vectors (what DRAM moves anyway where the gaps are shorter than 64
//                bytes);
//   span_vectors: a thread a plane loads the 16-byte vectors its span touches, adds nothing (tiny planes alone):
//                the read of the sectors x's elements lie in, which the sweep's *reach* counts.
// Timing: CUDA events around the kernel alone, the L2 flushed (a 256 MiB memset) before each rep; median of 30.
// Each schedule's sums are checked against thread_plane's (the same elements, added in another order).
#include "read_bench.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <type_traits>

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using Acc = typename AccOf<T>::type;
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ double widen(double v) { return v; }

struct Planes {
  const void* first;  // the first plane's first element
  int64_t planes;
  int64_t plane_stride;  // elements
  int rows, columns, row_stride, column_stride;
  void* sums;  // [planes] of Acc<T>
};

// The load every schedule's elements take (-DLOAD_POLICY, default 1): 0 __ldcs (evict first: fusedlse's loads of x
// of at most 4.5 L2s), 1 __ldg (the read-only path: fusedlse's past that, r25's and r59's), 2 ld.global.L1::evict_last
// (the compiled reduction's eviction_policy='evict_last'). The flat read keeps __ldcs.
#ifndef LOAD_POLICY
#define LOAD_POLICY 1
#endif
template <typename T> __device__ __forceinline__ T load_elem(const T* p) {
#if LOAD_POLICY == 0
  return __ldcs(p);
#elif LOAD_POLICY == 1
  return __ldg(p);
#else
  T value;
  if constexpr (sizeof(T) == 2) {
    unsigned short bits;
    asm("ld.global.L1::evict_last.u16 %0, [%1];" : "=h"(bits) : "l"(p));
    std::memcpy(&value, &bits, 2);
  } else if constexpr (sizeof(T) == 8) {
    unsigned long long bits;
    asm("ld.global.L1::evict_last.u64 %0, [%1];" : "=l"(bits) : "l"(p));
    std::memcpy(&value, &bits, 8);
  } else {
    static_assert(sizeof(T) == 16, "2-, 8- and 16-byte loads");
    uint4 bits;
    asm("ld.global.L1::evict_last.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(bits.x), "=r"(bits.y), "=r"(bits.z), "=r"(bits.w) : "l"(p));
    std::memcpy(&value, &bits, 16);
  }
  return value;
#endif
}

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One strided column (columns == 1): element e at e * row_stride.
template <typename T, int kLoads, bool kPersistent, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks) warp_plane(Planes a) {
  const T* first = static_cast<const T*>(a.first);
  Acc<T>* sums = static_cast<Acc<T>*>(a.sums);
  const int lane = threadIdx.x % 32, n = a.rows, stride = a.row_stride;
  const int64_t warp = (int64_t{blockIdx.x} * kThreads + threadIdx.x) / 32;
  const int64_t warps = kPersistent ? int64_t{gridDim.x} * (kThreads / 32) : a.planes;
  for (int64_t p = warp; p < a.planes; p += warps) {
    const T* plane = first + p * a.plane_stride;
    Acc<T> acc = 0;
    for (int e = lane; e < n; e += kLoads * 32) {
      T v[kLoads];
      if (e + (kLoads - 1) * 32 < n) {
#pragma unroll
        for (int i = 0; i < kLoads; ++i) v[i] = load_elem(plane + (e + 32 * i) * stride);
#pragma unroll
        for (int i = 0; i < kLoads; ++i) acc += widen(v[i]);
      } else {
#pragma unroll
        for (int i = 0; i < kLoads; ++i) {
          if (e + 32 * i >= n) break;
          v[i] = load_elem(plane + (e + 32 * i) * stride);
        }
#pragma unroll
        for (int i = 0; i < kLoads; ++i) {
          if (e + 32 * i >= n) break;
          acc += widen(v[i]);
        }
      }
    }
    acc = warp_sum(acc);
    if (lane == 0) sums[p] = acc;
  }
}

// One strided column, a block of kBlock threads a plane, at most kBlock * kPerThread elements.
template <typename T, int kBlock, int kPerThread>
__global__ void __launch_bounds__(kBlock) block_plane(Planes a) {
  const T* plane = static_cast<const T*>(a.first) + int64_t{blockIdx.x} * a.plane_stride;
  const int n = a.rows;
  T v[kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int e = threadIdx.x + i * kBlock;
    if (e < n) v[i] = load_elem(plane + e * a.row_stride);
  }
  Acc<T> acc = 0;
#pragma unroll
  for (int i = 0; i < kPerThread; ++i)
    if (threadIdx.x + i * kBlock < n) acc += widen(v[i]);
  acc = warp_sum(acc);
  __shared__ Acc<T> warp_sums[kBlock / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    Acc<T> total = 0;
    for (int w = 0; w < kBlock / 32; ++w) total += warp_sums[w];
    static_cast<Acc<T>*>(a.sums)[blockIdx.x] = total;
  }
}

// One strided column, kPieces warps a plane (the plane-lanes reader's pieces in a block, 32 lanes each): a block of
// kThreads holds kThreads / 32 / kPieces planes, warp w of a plane adds its piece, elements [w * piece, (w + 1) *
// piece), all its loads in flight (at most kLoads a lane), and the plane's first warp adds the pieces from shared
// memory. A block a turn: every plane read by its own block's warps at once.
template <typename T, int kPieces, int kLoads>
__global__ void __launch_bounds__(kThreads) warp_pieces(Planes a) {
  using A = Acc<T>;
  constexpr int kWarps = kThreads / 32, kPlanesPerBlock = kWarps / kPieces;
  __shared__ A piece_sums[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n = a.rows, stride = a.row_stride;
  const int piece = (n + kPieces - 1) / kPieces, my_piece = warp % kPieces;
  const int64_t p = int64_t{blockIdx.x} * kPlanesPerBlock + warp / kPieces;
  A acc = 0;
  if (p < a.planes) {
    const T* plane = static_cast<const T*>(a.first) + p * a.plane_stride;
    const int end = min(n, (my_piece + 1) * piece);
    T v[kLoads];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int e = my_piece * piece + lane + 32 * i;
      if (e < end) v[i] = load_elem(plane + e * stride);
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i)
      if (my_piece * piece + lane + 32 * i < end) acc += widen(v[i]);
  }
  acc = warp_sum(acc);
  if (lane == 0) piece_sums[warp] = acc;
  __syncthreads();
  if (threadIdx.x % (32 * kPieces) == 0 && p < a.planes) {
    A total = 0;
    for (int w = 0; w < kPieces; ++w) total += piece_sums[warp + w];
    static_cast<A*>(a.sums)[p] = total;
  }
}

// A plane's element e's offset from its first (row e / columns, column e % columns).
__device__ __forceinline__ int element_offset(const Planes& a, int e) {
  const int row = e / a.columns;
  return row * a.row_stride + (e - row * a.columns) * a.column_stride;
}

// A thread a plane of at most kMaxN elements, their offsets computed once.
template <typename T, int kMaxN, bool kPersistent>
__global__ void __launch_bounds__(kThreads) thread_plane(Planes a) {
  const T* first = static_cast<const T*>(a.first);
  const int n = a.rows * a.columns;
  int offset[kMaxN];
#pragma unroll
  for (int e = 0; e < kMaxN; ++e) offset[e] = e < n ? element_offset(a, e) : 0;
  const int64_t threads = kPersistent ? int64_t{gridDim.x} * kThreads : a.planes;
  for (int64_t p = int64_t{blockIdx.x} * kThreads + threadIdx.x; p < a.planes; p += threads) {
    const T* plane = first + p * a.plane_stride;
    T v[kMaxN];
#pragma unroll
    for (int e = 0; e < kMaxN; ++e)
      if (e < n) v[e] = load_elem(plane + offset[e]);
    Acc<T> acc = 0;
#pragma unroll
    for (int e = 0; e < kMaxN; ++e)
      if (e < n) acc += widen(v[e]);
    static_cast<Acc<T>*>(a.sums)[p] = acc;
  }
}

// A warp 32 neighbouring planes of at most kMaxN elements: lane l loads the group's elements k = l + 32 j (plane
// k / n, element k % n), all in flight, stages them, and adds plane l's from the stage. The planes' offsets from the
// group's first are the same for every group (planes evenly spaced), so computed once.
template <typename T, int kMaxN, bool kPersistent>
__global__ void __launch_bounds__(kThreads) warp_group(Planes a) {
  using A = Acc<T>;
  const T* first = static_cast<const T*>(a.first);
  const int n = a.rows * a.columns, lane = threadIdx.x % 32;
  __shared__ A stage[kThreads / 32][32 * kMaxN + 1];
  A* mine = stage[threadIdx.x / 32];
  int offset[kMaxN], plane_of[kMaxN];
#pragma unroll
  for (int j = 0; j < kMaxN; ++j) {
    const int k = lane + 32 * j, q = k / n;
    plane_of[j] = q;
    offset[j] = j < n ? static_cast<int>(q * a.plane_stride) + element_offset(a, k - q * n) : 0;
  }
  const int64_t groups = (a.planes + 31) / 32;
  const int64_t step = kPersistent ? int64_t{gridDim.x} * (kThreads / 32) : groups;
  for (int64_t g = (int64_t{blockIdx.x} * kThreads + threadIdx.x) / 32; g < groups; g += step) {
    const T* base = first + g * 32 * a.plane_stride;
    const int64_t left = a.planes - g * 32;  // planes in this group: 32 but in the last
    T v[kMaxN];
#pragma unroll
    for (int j = 0; j < kMaxN; ++j)
      if (j < n && plane_of[j] < left) v[j] = load_elem(base + offset[j]);
#pragma unroll
    for (int j = 0; j < kMaxN; ++j)
      if (j < n) mine[lane + 32 * j] = plane_of[j] < left ? widen(v[j]) : A(0);
    __syncwarp();
    A acc = 0;
    for (int e = 0; e < n; ++e) acc += mine[lane * n + e];
    if (lane < left) static_cast<A*>(a.sums)[g * 32 + lane] = acc;
    __syncwarp();
  }
}

// A thread a plane loads the aligned 16-byte vectors its span (first to last element) touches and adds nothing: the
// read of the sectors a plane's elements lie in (and the gaps inside its span), what the sweep's *reach* counts; a
// block a turn. At most kMaxVectors vectors a plane.
template <typename T, int kMaxVectors>
__global__ void __launch_bounds__(kThreads) span_vectors(Planes a, unsigned* out) {
  const int64_t p = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (p >= a.planes) return;
  const T* plane = static_cast<const T*>(a.first) + p * a.plane_stride;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(plane) & ~uintptr_t{15};
  const uintptr_t end = reinterpret_cast<uintptr_t>(plane + (a.rows - 1) * a.row_stride +
                                                    (a.columns - 1) * a.column_stride) + sizeof(T);
  const uint4* v = reinterpret_cast<const uint4*>(begin);
  const int vectors = static_cast<int>((end - begin + 15) / 16);
  uint4 loaded[kMaxVectors];
#pragma unroll
  for (int i = 0; i < kMaxVectors; ++i)
    if (i < vectors) loaded[i] = load_elem(v + i);
  unsigned acc = 0;
#pragma unroll
  for (int i = 0; i < kMaxVectors; ++i)
    if (i < vectors) acc ^= loaded[i].x ^ loaded[i].y ^ loaded[i].z ^ loaded[i].w;
  if (acc == 0x12345678u) *out = acc;  // keeps the loads
}

// The storage's bytes as 16-byte vectors (8 in flight a thread): the read of everything DRAM moves.
__global__ void __launch_bounds__(kThreads) flat(const uint4* data, int64_t vectors, unsigned* out) {
  unsigned acc = 0;
  const int64_t threads = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < vectors; i += 8 * threads) {
    uint4 v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = i + j * threads < vectors ? __ldcs(data + i + j * threads) : uint4{};
#pragma unroll
    for (int j = 0; j < 8; ++j) acc ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
  }
  if (acc == 0x12345678u) *out = acc;  // keeps the loads
}

// Storage values: small integers by a hash of the index, so the sums are exact in every order (float, double).
template <typename T> __global__ void fill(T* data, int64_t count) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const float value = static_cast<float>((static_cast<uint32_t>(i) * 2654435761u) >> 28) - 7.0f;
    if constexpr (std::is_same_v<T, double>) data[i] = value;
    else if constexpr (std::is_same_v<T, __half>) data[i] = __float2half(value);
    else data[i] = __float2bfloat16(value);
  }
}

template <typename Kernel> int resident_blocks(Kernel kernel) {
  int blocks = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kThreads, 0));
  return blocks;
}

struct Layout {
  const char* name;
  int64_t batch, channels;
  int rows, columns, row_stride, column_stride, plane_stride;
};

template <typename T, int kMaxN> void run_layout(const Layout& l, int sms, void* flush) {
  using A = Acc<T>;
  Planes a{};
  a.planes = l.batch * l.channels;
  a.plane_stride = l.plane_stride;
  a.rows = l.rows;
  a.columns = l.columns;
  a.row_stride = l.row_stride;
  a.column_stride = l.column_stride;
  const int64_t storage = a.planes * a.plane_stride;
  T* data;
  A *sums, *reference;
  unsigned* sink;
  CHECK(cudaMalloc(&data, storage * sizeof(T)));
  CHECK(cudaMalloc(&sums, a.planes * sizeof(A)));
  CHECK(cudaMalloc(&reference, a.planes * sizeof(A)));
  CHECK(cudaMalloc(&sink, sizeof(unsigned)));
  fill<<<sms * 8, 256>>>(data, storage);
  a.first = data + l.row_stride + 2;  // x = big[:, :, 1:, 2:]: row 1, column 2 of its plane's storage
  const int n = a.rows * a.columns;
  std::printf("%s (load policy %d): %lld planes of %d x %d, %zu-byte elements, storage %.3f GB\n", l.name,
              LOAD_POLICY, static_cast<long long>(a.planes), a.rows, a.columns, sizeof(T), storage * sizeof(T) / 1e9);
  const double storage_gb = storage * sizeof(T) / 1e9;
  a.sums = reference;
  if (n <= 32) {
    thread_plane<T, 32, false><<<(a.planes + kThreads - 1) / kThreads, kThreads>>>(a);
  } else {
    block_plane<T, 128, 4><<<a.planes, 128>>>(a);
  }
  CHECK(cudaDeviceSynchronize());
  std::vector<A> want(a.planes), got(a.planes);
  CHECK(cudaMemcpy(want.data(), reference, a.planes * sizeof(A), cudaMemcpyDeviceToHost));
  a.sums = sums;
  const auto time = [&](const char* name, auto launch, bool writes_sums = true) {
    CHECK(cudaMemset(sums, 0xff, a.planes * sizeof(A)));  // NaN until written
    const double ms = median_ms([&](int rep) { CHECK(cudaMemsetAsync(flush, rep, 256 << 20)); }, launch);
    CHECK(cudaMemcpy(got.data(), sums, a.planes * sizeof(A), cudaMemcpyDeviceToHost));
    int64_t wrong = 0;
    for (int64_t p = 0; writes_sums && p < a.planes; ++p) wrong += !(got[p] == want[p]);
    std::printf("  %-40s %9.1f us %6.3f TB/s of storage%s\n", name, ms * 1e3, storage_gb / ms,
                wrong ? " WRONG" : "");
  };
  const int64_t vectors = storage * sizeof(T) / 16;
  const auto* vector_data = reinterpret_cast<const uint4*>(data);
  time("flat (every storage byte, 16 B loads)", [&] { flat<<<sms * 8, kThreads>>>(vector_data, vectors, sink); },
       false);
  if constexpr (kMaxN == 0) {
    const auto persistent = [&](auto kernel, const char* name) {
      const int blocks = resident_blocks(kernel) * sms;
      char label[64];
      std::snprintf(label, sizeof label, "%s (%d a SM)", name, blocks / sms);
      time(label, [&] { kernel<<<blocks, kThreads>>>(a); });
    };
    persistent(warp_plane<T, 16, true, 1>, "warp_plane 16 loads, persistent");
    persistent(warp_plane<T, 8, true, 1>, "warp_plane 8 loads, persistent");
    persistent(warp_plane<T, 16, true, 8>, "warp_plane 16 loads, persistent, 32 regs");
    persistent(warp_plane<T, 8, true, 8>, "warp_plane 8 loads, persistent, 32 regs");
    const int64_t warp_blocks = (a.planes + kThreads / 32 - 1) / (kThreads / 32);
    time("warp_plane 16 loads, a warp a plane", [&] { warp_plane<T, 16, false, 1><<<warp_blocks, kThreads>>>(a); });
    time("block_plane 128 x 4", [&] { block_plane<T, 128, 4><<<a.planes, 128>>>(a); });
    // r25's 333 elements: 2 pieces of 167 (6 loads a lane), 4 of 84 (3)
    time("warp_pieces 2 a plane", [&] { warp_pieces<T, 2, 6><<<(a.planes + 3) / 4, kThreads>>>(a); });
    time("warp_pieces 4 a plane", [&] { warp_pieces<T, 4, 3><<<(a.planes + 1) / 2, kThreads>>>(a); });
    time("block_plane 64 x 8", [&] { block_plane<T, 64, 8><<<a.planes, 64>>>(a); });
    time("block_plane 256 x 2", [&] { block_plane<T, 256, 2><<<a.planes, 256>>>(a); });
  } else {
    const int64_t thread_blocks = (a.planes + kThreads - 1) / kThreads;
    const int64_t group_blocks = ((a.planes + 31) / 32 + kThreads / 32 - 1) / (kThreads / 32);
    const auto persistent = [&](auto kernel, const char* name) {
      const int blocks = resident_blocks(kernel) * sms;
      char label[64];
      std::snprintf(label, sizeof label, "%s (%d a SM)", name, blocks / sms);
      time(label, [&] { kernel<<<blocks, kThreads>>>(a); });
    };
    time("span_vectors (the sectors planes touch)", [&] {
      span_vectors<T, 8><<<thread_blocks, kThreads>>>(a, sink);
    }, false);
    persistent(thread_plane<T, kMaxN, true>, "thread_plane, persistent");
    time("thread_plane, a thread a plane", [&] { thread_plane<T, kMaxN, false><<<thread_blocks, kThreads>>>(a); });
    persistent(warp_group<T, kMaxN, true>, "warp_group, persistent");
    time("warp_group, a warp 32 planes", [&] { warp_group<T, kMaxN, false><<<group_blocks, kThreads>>>(a); });
  }
  CHECK(cudaFree(data));
  CHECK(cudaFree(sums));
  CHECK(cudaFree(reference));
  CHECK(cudaFree(sink));
}

int main() {
  void* flush;
  const int sms = device_and_flush(&flush);
  // kMaxN: the planes' elements (tiny planes), or 0 for a column.
  run_layout<__nv_bfloat16, 0>({"r25", 10253, 127, 333, 1, 3, 1, 1002}, sms, flush);
  run_layout<double, 3>({"r59", 9346, 1570, 3, 1, 3, 1, 12}, sms, flush);
  run_layout<__half, 6>({"r58", 125565, 69, 2, 3, 5, 1, 15}, sms, flush);
  run_layout<__half, 18>({"r26", 500741, 18, 3, 6, 8, 1, 32}, sms, flush);
  return 0;
}
