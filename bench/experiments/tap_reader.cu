// Where the padded forward's tap reader (csrc/cuda/taps.cu) loses time against a plain read of the same bytes: the
// headline's x ([16, 64, 512, 512] float32, 1 GiB of ones) read by one warp per run of rows of a plane, its vectors
// walked flat (lanes take them in turn, kLoads in flight), with each piece of the tap reader added in turn:
//   plain        the walk alone, no column test (every element into one sum): the ceiling of this schedule;
//   masked       + a multiply-shift division and a column test per vector, border elements left out (padding 1);
//   group loads  + each 8 rows' two border columns loaded one by one after them (taps.cu's way up to dfa9e67);
//   from vectors + the border columns taken from the vectors that hold them (no extra loads: taps.cu's way since
//                d2fc197);
// at 4 and 8 loads in flight, 2 and 4 blocks per SM, 2 to 8 runs per resident warp, and torch-free plain flat reads
// of the whole buffer for reference. Every kernel writes its partial sums; their total must be the element count
// (the border rows are summed as well). Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/tap_reader.cu -o /tmp/tap_reader && /tmp/tap_reader
//
// Timing: read_bench.cuh's (the L2 flushed with dirty lines before each rep, median of 30). Results: docs/limits.md
// §30.
#include "read_bench.cuh"
#include "../../csrc/cuda/kernels.h"  // FastDivisor, fast_divisor: taps.cu's division

constexpr int kWarps = kThreads / 32;
constexpr int kBatch = 16, kChannels = 64, kHeight = 512, kWidth = 512;
constexpr int kPlanes = kBatch * kChannels;
constexpr int kVec = 4;  // floats per 16-byte vector
constexpr int kPerRow = kWidth / kVec;

enum class Border { kNone, kUnmasked, kGroupLoads, kFromVectors };

using fusedlse::FastDivisor;
__device__ __forceinline__ uint32_t divide(uint32_t n, FastDivisor d) { return (__umulhi(n, d.magic) + n) >> d.shift; }

// Run `unit` of plane unit / chunks: rows [first, end), rows 0 and kHeight - 1 being border rows, columns 0 and
// kWidth - 1 border columns (padding 1 of a 3 x 3 kernel). Partials: [units, 4] = middle, column 0, last column,
// border rows.
template <int kLoads, Border kBorder>
__device__ __forceinline__ void run_unit(const float* x, int64_t unit, int chunk_rows, int chunks, int group_rows,
                                         FastDivisor per_row, float* partials, int lane) {
  const int64_t plane = unit / chunks;
  const int chunk = static_cast<int>(unit - plane * chunks);
  const float* base = x + plane * kHeight * kWidth;
  const int first_row = chunk * chunk_rows, end_row = min(first_row + chunk_rows, kHeight);
  const bool masked = kBorder != Border::kUnmasked && kBorder != Border::kNone;
  const int middle_first = kBorder == Border::kNone ? first_row : max(first_row, 1);
  const int middle_end = kBorder == Border::kNone ? end_row : min(end_row, kHeight - 1);
  float middle = 0.f, col0 = 0.f, col_last = 0.f, rows = 0.f;
#pragma unroll 1
  for (int g0 = middle_first; g0 < middle_end; g0 += group_rows) {
    const int g1 = min(g0 + group_rows, middle_end);
    const float* span = base + static_cast<int64_t>(g0) * kWidth;
    const uint32_t count = static_cast<uint32_t>(g1 - g0) * kPerRow;
#pragma unroll 1
    for (uint32_t first = lane; first < count; first += 32 * kLoads) {
      float4 v[kLoads];
      int col[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        const uint32_t e = first + 32 * u;
        if (masked) {
          const uint32_t r = divide(e, per_row);
          col[u] = static_cast<int>(e - r * kPerRow) * kVec;
        } else {
          col[u] = kVec;
        }
        v[u] = e < count ? __ldg(reinterpret_cast<const float4*>(span) + e) : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        if (!masked || (col[u] >= 1 && col[u] + kVec <= kWidth - 1)) {
          middle += vsum(v[u]);
        } else {
          const float e[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
#pragma unroll
          for (int k = 0; k < kVec; ++k) {
            const int c = col[u] + k;
            if (c >= 1 && c < kWidth - 1) {
              middle += e[k];
            } else if (kBorder == Border::kFromVectors) {
              if (c == 0) col0 += e[k]; else col_last += e[k];
            }
          }
        }
      }
    }
    if (kBorder == Border::kGroupLoads && lane < 2) {
      const int own = lane == 0 ? 0 : kWidth - 1;
      float& acc = lane == 0 ? col0 : col_last;
#pragma unroll 1
      for (int i0 = g0; i0 < g1; i0 += 8) {
        float w[8];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
          w[u] = i0 + u < g1 ? __ldg(base + static_cast<int64_t>(i0 + u) * kWidth + own) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 8; ++u) acc += w[u];
      }
    }
  }
  if (kBorder != Border::kNone) {
    for (int i = first_row; i < end_row; ++i) {
      if (i >= middle_first && i < middle_end) continue;
      float s = 0.f;
      for (int j = lane; j < kWidth; j += 32) s += __ldg(base + static_cast<int64_t>(i) * kWidth + j);
      rows += s;
    }
  }
  float* part = partials + unit * 4;
  middle = warp_total(middle);
  rows = warp_total(rows);
  if (kBorder == Border::kFromVectors) {
    col0 = warp_total(col0);
    col_last = warp_total(col_last);
  }
  if (lane == 0) {
    part[0] = middle;
    part[3] = rows;
    if (kBorder == Border::kFromVectors) part[1] = col0, part[2] = col_last;
  }
  if (kBorder == Border::kGroupLoads && lane < 2) part[1 + lane] = lane == 0 ? col0 : col_last;
}

template <int kLoads, Border kBorder, int kMinBlocks>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    tap_reader(const float* x, int chunk_rows, int chunks, int group_rows, FastDivisor per_row, float* partials) {
  const int64_t unit = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (unit < static_cast<int64_t>(kPlanes) * chunks) {
    run_unit<kLoads, kBorder>(x, unit, chunk_rows, chunks, group_rows, per_row, partials, threadIdx.x & 31);
  }
}

template <int kLoads, Border kBorder, int kMinBlocks>
void time_variant(const Bench& b, const char* what, int runs_per_warp, int group_rows) {
  const auto kernel = tap_reader<kLoads, kBorder, kMinBlocks>;
  int per_sm = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0));
  const int resident_warps = b.sms * per_sm * kWarps;
  const int chunks = std::min(kHeight, (runs_per_warp * resident_warps + kPlanes - 1) / kPlanes);
  const int chunk_rows = (kHeight + chunks - 1) / chunks;
  const int used_chunks = (kHeight + chunk_rows - 1) / chunk_rows;
  const int64_t units = static_cast<int64_t>(kPlanes) * used_chunks;
  const unsigned blocks = static_cast<unsigned>((units + kWarps - 1) / kWarps);
  char name[128];
  std::snprintf(name, sizeof(name), "%-12s %d loads, %d blk/SM, %d runs/warp, %d-row groups", what, kLoads, per_sm,
                runs_per_warp, group_rows);
  const FastDivisor d = fusedlse::fast_divisor(kPerRow);
  run(b, name, units * 4, [&] { kernel<<<blocks, kThreads>>>(reinterpret_cast<const float*>(b.x), chunk_rows,
                                                              used_chunks, group_rows, d, b.partials); });
}

// A flat read of the whole buffer, a warp per contiguous run of `chunk` vectors (read_strategies.cu's dynamic
// schedule without the counter): the same bytes with no planes at all.
template <int kLoads>
__global__ void __launch_bounds__(kThreads) flat_runs(const float4* x, int64_t vectors, int64_t chunk,
                                                       float* partials) {
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int64_t begin = warp * chunk, end = begin + chunk < vectors ? begin + chunk : vectors;
  float acc = 0.f;
  for (int64_t i = begin + lane; i < end; i += 32 * kLoads) {
    float4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) v[u] = i + 32 * u < end ? __ldg(x + i + 32 * u) : make_float4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < kLoads; ++u) acc += vsum(v[u]);
  }
  acc = warp_total(acc);
  if (lane == 0) partials[warp] = acc;
}

int main() {
  const Bench b = first_mib(allocate_bench(), 1024);
  std::printf("[%d, %d, %d, %d] float32, padding 1 of a 3 x 3 kernel\n", kBatch, kChannels, kHeight, kWidth);
  for (int runs : {4}) {
    const int64_t warps = int64_t(runs) * b.sms * 64;
    const int64_t chunk = (b.vectors + warps - 1) / warps;
    const int64_t used = (b.vectors + chunk - 1) / chunk;
    run(b, "flat runs, 8 loads (no planes)", used, [&] {
      flat_runs<8><<<static_cast<unsigned>((used + kWarps - 1) / kWarps), kThreads>>>(b.x, b.vectors, chunk,
                                                                                      b.partials);
    });
  }
  time_variant<4, Border::kNone, 4>(b, "plain", 4, kHeight);
  time_variant<8, Border::kNone, 2>(b, "plain", 4, kHeight);
  time_variant<4, Border::kUnmasked, 4>(b, "unmasked", 4, 8);
  time_variant<4, Border::kGroupLoads, 4>(b, "group loads", 4, 8);  // taps.cu's state (dfa9e67)
  time_variant<4, Border::kGroupLoads, 4>(b, "group loads", 2, 8);
  time_variant<4, Border::kGroupLoads, 4>(b, "group loads", 8, 8);
  time_variant<4, Border::kGroupLoads, 4>(b, "group loads", 4, 32);
  time_variant<8, Border::kGroupLoads, 2>(b, "group loads", 4, 8);
  time_variant<4, Border::kFromVectors, 4>(b, "from vectors", 4, kHeight);
  time_variant<4, Border::kFromVectors, 4>(b, "from vectors", 8, kHeight);
  time_variant<8, Border::kFromVectors, 2>(b, "from vectors", 4, kHeight);
  time_variant<8, Border::kFromVectors, 3>(b, "from vectors", 4, kHeight);
  return 0;
}
