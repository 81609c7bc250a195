// CPU backend: the same semantics as the CUDA kernels, through ATen, and loops of its own over planes and pixels for
// the padded sums and 16-bit plane sums.

#include "../fusedlse.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace fusedlse {
namespace {

// Elements of 16-bit x converted to float32 at a time, into one buffer, where the plane loop does not apply
// (plane_sums). ATen's x.sum(dtype=float32) of 16-bit x makes a float32 copy of the whole of x first, and its fresh
// pages cost more than the sum: [16, 64, 512, 512] bfloat16 took 310-340 ms that way, the whole forward 35
// (contiguous) and 52 (channels-last) ms by pieces of 2^20 elements, and ATen's sum in bfloat16 itself 9-16 / 33 ms
// (2 cores; docs/limits.md §86). One buffer for every piece: the allocator is asked once a call.
constexpr int64_t kConvertPieceElements = int64_t{1} << 20;

// x [B, C, H, W], a batch of at most kConvertPieceElements, in pieces of whole batches converted to `acc`:
// fn(values, first_batch, count) per piece, values [count, C, H, W] in one buffer (empty_like keeps channels-last x's
// strides, so the copy is not a transpose).
template <typename Fn>
void for_each_converted_batches(const at::Tensor& x, at::ScalarType acc, const Fn& fn) {
  const int64_t batch = x.size(0);
  const int64_t piece_batches = std::max<int64_t>(1, kConvertPieceElements / (x.size(1) * x.size(2) * x.size(3)));
  const at::Tensor buffer = at::empty_like(x.narrow(0, 0, std::min(piece_batches, batch)), x.options().dtype(acc));
  for (int64_t b = 0; b < batch; b += piece_batches) {
    const int64_t count = std::min(piece_batches, batch - b);
    fn(buffer.narrow(0, 0, count).copy_(x.narrow(0, b, count)), b, count);
  }
}

// Elements a row run adds in lanes of its own type before they join the run's float64 total: a float32 lane's error
// grows with the values it holds, and a row can be millions long.
constexpr int64_t kRunLaneElements = 4096;

// The sum of n consecutive values: runs of under two vectors one by one; longer ones in 8 vectors of 16 bytes (GCC's
// and Clang's vector extensions: registers whose adds are independent; an array of 32 lanes, which the compiler
// vectorized, stayed in memory and stalled on its own stores: [12, 166, 25, 39] float32 at padding 1, tap_sums 1.7 ms
// on one core that way, 0.42 this), the whole vectors after the last step of 8 each into a lane of its own, the last
// values of under a vector one by one (runs of 33-63 values had added their rest one by one, a chain of 4 cycles a
// value), flushed to a float64 total every kRunLaneElements.
template <typename T>
double run_sum(const T* values, int64_t n) {
#if defined(__GNUC__)
  typedef T Vector __attribute__((vector_size(16)));
  constexpr int kPerVector = 16 / sizeof(T), kVectors = 8, kStep = kPerVector * kVectors;
  if (n < 2 * kPerVector) {
    T short_sum = 0;
    for (int64_t i = 0; i < n; ++i) short_sum += values[i];
    return static_cast<double>(short_sum);
  }
  double total = 0;
  for (int64_t start = 0; start < n; start += kRunLaneElements) {
    const int64_t end = std::min(n, start + kRunLaneElements);
    Vector lanes[kVectors] = {};
    int64_t i = start;
    for (; i + kStep <= end; i += kStep) {
      for (int j = 0; j < kVectors; ++j) {
        Vector v;
        std::memcpy(&v, values + i + j * kPerVector, sizeof(v));
        lanes[j] += v;
      }
    }
    const int64_t rest = (end - i) / kPerVector;  // under kVectors whole vectors
    for (int j = 0; j < kVectors; ++j) {  // constant indices, so that the lanes stay in registers
      if (j < rest) {
        Vector v;
        std::memcpy(&v, values + i + j * kPerVector, sizeof(v));
        lanes[j] += v;
      }
    }
    i += rest * kPerVector;
    const Vector pairs =
        ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    T sum = 0;
    for (int j = 0; j < kPerVector; ++j) sum += pairs[j];
    for (; i < end; ++i) sum += values[i];
    total += static_cast<double>(sum);
  }
  return total;
#else
  double total = 0;
  for (int64_t start = 0; start < n; start += kRunLaneElements) {
    const int64_t end = std::min(n, start + kRunLaneElements);
    T lanes[8] = {};
    int64_t i = start;
    for (; i + 8 <= end; i += 8) {
      for (int j = 0; j < 8; ++j) lanes[j] += values[i + j];
    }
    T sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; i < end; ++i) sum += values[i];
    total += static_cast<double>(sum);
  }
  return total;
#endif
}

inline float float_of_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline uint32_t bits_of_float(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// lanes[i] += values[i] widened, i < n.
template <typename Elements>
void add_widened(typename Elements::Lane* __restrict lanes, const typename Elements::Storage* __restrict values,
                 int64_t n) {
  for (int64_t i = 0; i < n; ++i) lanes[i] += Elements::widen(values[i]);
}

// out[i] = values[i] widened, i < n.
template <typename Elements>
void store_widened(typename Elements::Lane* __restrict out, const typename Elements::Storage* __restrict values,
                   int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = Elements::widen(values[i]);
}

// Values a run is widened by at a time (stored_run_sum): 4 KiB of float32, in L1.
constexpr int64_t kWidenedRunPiece = 1024;

// The sum of n consecutive 16-bit values: widened a piece at a time into buffer [kWidenedRunPiece] (Elements::store),
// each piece's run_sum.
template <typename Elements>
double stored_run_sum(const typename Elements::Storage* values, int64_t n, typename Elements::Lane* buffer) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kWidenedRunPiece) {
    const int64_t count = std::min(kWidenedRunPiece, n - start);
    Elements::store(buffer, values + start, count);
    total += run_sum(buffer, count);
  }
  return total;
}

// How the plane loop reads an element type: Storage, what x holds; Lane, what its lanes add (float32 for 16-bit x);
// widen, one to the other; add(lanes, values, n), lanes[i] += values[i] widened; store (16-bit only), the same with =;
// sum (16-bit only), the sum of n values widened, buffer [kWidenedRunPiece] float32 to widen them into where it needs.
// 16-bit floats are widened by integer operations on their bits, which the compiler vectorizes (c10's conversions in
// such a loop it did not: bfloat16 1.35 ns an element against float32's 0.04, docs/limits.md §86); both are exact for
// all 65536 patterns (tests/test_building_blocks.py).
template <typename T>
struct PlainElements {
  using Storage = T;
  using Lane = T;
  static T widen(T value) { return value; }
  static void add(T* lanes, const T* values, int64_t n) { add_widened<PlainElements>(lanes, values, n); }
};

struct BFloat16Elements {
  using Storage = uint16_t;
  using Lane = float;
  static float widen(uint16_t bits) { return float_of_bits(static_cast<uint32_t>(bits) << 16); }
  static void add(float* lanes, const uint16_t* values, int64_t n) { add_widened<BFloat16Elements>(lanes, values, n); }
  static void store(float* out, const uint16_t* values, int64_t n) { store_widened<BFloat16Elements>(out, values, n); }
  static double sum(const uint16_t* values, int64_t n, float* buffer) {
    return stored_run_sum<BFloat16Elements>(values, n, buffer);
  }
};

struct HalfElements {
  using Storage = uint16_t;
  using Lane = float;
  // The magnitude's bits moved to float32's places and its exponent rebiased by 112; infinities and NaNs by 224 (to
  // float32's top exponent); subnormals (exponent 0) as 2^-14 + m 2^-24, then 2^-14 taken away: only normal operands,
  // so a CPU that flushes subnormal float32 operands to zero gets them right too. Masks, not branches: the compiler
  // left a loop with branches unvectorized.
  static float widen(uint16_t bits) {
    const uint32_t magnitude = static_cast<uint32_t>(bits & 0x7fff) << 13, exponent = magnitude & 0x0f800000;
    const uint32_t special = 0u - static_cast<uint32_t>(exponent == 0x0f800000);
    const uint32_t subnormal = 0u - static_cast<uint32_t>(exponent == 0);
    const uint32_t rebiased = magnitude + (112u << 23) + (special & (112u << 23)) + (subnormal & (1u << 23));
    const float value = float_of_bits(rebiased) - float_of_bits(subnormal & (113u << 23));
    return float_of_bits(bits_of_float(value) | (static_cast<uint32_t>(bits & 0x8000) << 16));
  }
  static void add(float* lanes, const uint16_t* values, int64_t n);
  static void store(float* out, const uint16_t* values, int64_t n);
  static double sum(const uint16_t* values, int64_t n, float* buffer);
};

#if defined(__GNUC__) && defined(__x86_64__)
// F16C's conversion, 8 halves an instruction, where the bit operations above take about 12 SSE2 instructions for 4:
// x [4064, 6, 4, 43] float16 (rows 45 apart), the forward 1.05 ms against 1.65 (2 cores, docs/limits.md §88). A run
// of 8 or more takes its last n % 8 as the run's last 8 converted again (one by one they took 3 x 12 instructions of
// a 43-element row; through a zeroed copy of 8, memcpy's call a row made r42's padding-0 forward 96 ms against 79,
// docs/limits.md §90). With F16C, HalfElements::sum widens as it adds, and store (stored_run_sum's) is not called.
__attribute__((target("avx,f16c"))) inline __m256 widen_halves_f16c(const uint16_t* values) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values)));
}

// The last `rest` (1-7) of 8 lanes all ones, the others zero.
__attribute__((target("avx,f16c"))) inline __m256 last_lanes_mask(int64_t rest) {
  alignas(32) static const int32_t kHalfOnes[16] = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1};
  return _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kHalfOnes + rest)));
}

__attribute__((target("avx,f16c"))) void add_halves_f16c(float* __restrict lanes,
                                                         const uint16_t* __restrict values, int64_t n) {
  if (n < 8) {
    for (int64_t i = 0; i < n; ++i) lanes[i] += HalfElements::widen(values[i]);
    return;
  }
  const int64_t rest = n % 8;
  // Where there is a rest, the last whole vector goes with it: both lanes' loads before either store, so that no load
  // waits on a store it overlaps in part; the run's last 8 stored first, the last whole vector's store then rewriting
  // the lanes they share.
  const int64_t body_end = rest > 0 ? n - rest - 8 : n;
  int64_t i = 0;
  for (; i + 8 <= body_end; i += 8) {
    _mm256_storeu_ps(lanes + i, _mm256_add_ps(_mm256_loadu_ps(lanes + i), widen_halves_f16c(values + i)));
  }
  if (rest == 0) return;
  const __m256 last = _mm256_loadu_ps(lanes + i), tail = _mm256_loadu_ps(lanes + n - 8);
  _mm256_storeu_ps(lanes + n - 8, _mm256_add_ps(tail, widen_halves_f16c(values + n - 8)));
  _mm256_storeu_ps(lanes + i, _mm256_add_ps(last, widen_halves_f16c(values + i)));
}

// The sum of n halves widened, without a float32 copy: four vectors of 8 float32 lanes, flushed into a float64
// total every kRunLaneElements as run_sum's. A border row's middle (r42 [268819, 6, 4, 43] float16 at padding 2, 39
// elements) had taken a copy into a buffer and run_sum's pass over it: store_halves_f16c 11.9% and run_sum 13.2% of
// the forward (2 cores, perf, docs/limits.md §89).
__attribute__((target("avx,f16c"))) double sum_halves_f16c(const uint16_t* values, int64_t n) {
  if (n < 8) {
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += HalfElements::widen(values[i]);
    return static_cast<double>(sum);
  }
  double total = 0;
  for (int64_t start = 0; start < n; start += kRunLaneElements) {
    const int64_t end = std::min(n, start + kRunLaneElements);
    __m256 lanes[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = start;
    for (; i + 32 <= end; i += 32) {
      for (int j = 0; j < 4; ++j) lanes[j] = _mm256_add_ps(lanes[j], widen_halves_f16c(values + i + 8 * j));
    }
    for (int j = 0; j < 3; ++j) {  // constant indices, so that the lanes stay in registers
      if (i + 8 <= end) {
        lanes[j] = _mm256_add_ps(lanes[j], widen_halves_f16c(values + i));
        i += 8;
      }
    }
    if (i < end) {  // end - i < 8 and n >= 8: the block's last 8 (from n's) again, the lanes taken before masked out
      const __m256 rest = _mm256_and_ps(widen_halves_f16c(values + end - 8), last_lanes_mask(end - i));
      lanes[3] = _mm256_add_ps(lanes[3], rest);
    }
    const __m256 pairs = _mm256_add_ps(_mm256_add_ps(lanes[0], lanes[1]), _mm256_add_ps(lanes[2], lanes[3]));
    const __m128 quads = _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
    float sum[4];
    _mm_storeu_ps(sum, quads);
    total += static_cast<double>((sum[0] + sum[2]) + (sum[1] + sum[3]));
  }
  return total;
}

// A row of halves into its cells (add_row_to_cells): the head's and the tail's columns by F16C's scalar conversion
// (the bit operations took about 12 instructions each), the middle's sum_halves_f16c.
__attribute__((target("avx,f16c"))) void add_half_row_to_cells_f16c(const uint16_t* values, int64_t width,
                                                                    const Cut& cols, double* totals) {
  for (int64_t w = 0; w < cols.head; ++w) totals[w] += _cvtsh_ss(values[w]);
  if (cols.middle > 0) totals[cols.head] += sum_halves_f16c(values + cols.head, cols.middle);
  const int64_t tail_segment = cols.head + (cols.middle > 0 ? 1 : 0);
  for (int64_t w = 0; w < cols.tail; ++w) totals[tail_segment + w] += _cvtsh_ss(values[width - cols.tail + w]);
}

bool cpu_has_f16c() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  }();
  return has;
}
#endif

void HalfElements::add(float* lanes, const uint16_t* values, int64_t n) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (cpu_has_f16c()) return add_halves_f16c(lanes, values, n);
#endif
  add_widened<HalfElements>(lanes, values, n);
}

void HalfElements::store(float* out, const uint16_t* values, int64_t n) { store_widened<HalfElements>(out, values, n); }

double HalfElements::sum(const uint16_t* values, int64_t n, float* buffer) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (cpu_has_f16c()) return sum_halves_f16c(values, n);
#endif
  return stored_run_sum<HalfElements>(values, n, buffer);
}

// Lanes a group of short rows fills: rows of W < 64 elements go 64 / W at a time, each into lanes of its own, so that
// a row's adds do not wait on the previous row's (the adds of one lane are a chain).
constexpr int64_t kGroupLanes = 64;

// Chains a column of one value a row (W = 1, rows apart) is added in, unrolled: x [99, 127, 333, 1] bfloat16 with
// rows 3 elements apart, the forward 13.9 ms by a call a row into lanes, 5.2-5.9 by an inline loop, 0.92 this; ATen's
// conversion and sum 1.6 (2 cores; docs/limits.md §88).
constexpr int kColumnChains = 8;

// Rows a lane adds before its total joins the cell's float64 one: a float32 lane's error grows with the values it
// holds (run_sum's lanes hold 4096 / 32).
constexpr int64_t kLaneValuesPerFlush = 128;

// float32 and float64 planes of more elements take segment_sums' ATen pieces, level with the loop or faster there
// (2 cores, ms, the loop / ATen's pieces: [1, 53, 21, 916] float64 at padding 1, 0.30-0.50 / 0.23; [1, 60, 5, 6276]
// float32 0.25-0.50 / 0.20; docs/limits.md §88); 16-bit x takes the loop at any size (no float32 copy).
constexpr int64_t kWidePlaneLoopMaxElements = 8192;

// Planes a task of the plane loop takes: about 2^15 elements' worth, at least one plane.
constexpr int64_t kCellTaskElements = int64_t{1} << 15;

// The sum of n consecutive values of x's type: run_sum's, 16-bit values widened by Elements::sum (into buffer
// [kWidenedRunPiece] where it needs one).
template <typename Elements>
double widened_run_sum(const typename Elements::Storage* values, int64_t n, typename Elements::Lane* buffer) {
  if constexpr (std::is_same_v<typename Elements::Storage, typename Elements::Lane>) {
    return run_sum(values, n);
  } else {
    return Elements::sum(values, n, buffer);
  }
}

// One row's values [W] -> its cells of the column cut, totals [column segments]: the head's and the tail's columns one
// by one, the middle's one run sum (widened_run_sum: 16-bit values by Elements::sum, buffer [kWidenedRunPiece]).
template <typename Elements>
void add_row_to_cells(const typename Elements::Storage* values, int64_t width, const Cut& cols, double* totals,
                      typename Elements::Lane* buffer) {
#if defined(__GNUC__) && defined(__x86_64__)
  if constexpr (std::is_same_v<Elements, HalfElements>) {
    if (cpu_has_f16c()) return add_half_row_to_cells_f16c(values, width, cols, totals);
  }
#endif
  for (int64_t w = 0; w < cols.head; ++w) totals[w] += Elements::widen(values[w]);
  if (cols.middle > 0) totals[cols.head] += widened_run_sum<Elements>(values + cols.head, cols.middle, buffer);
  const int64_t tail_segment = cols.head + (cols.middle > 0 ? 1 : 0);
  for (int64_t w = 0; w < cols.tail; ++w) totals[tail_segment + w] += Elements::widen(values[width - cols.tail + w]);
}

// lanes [group, W] (a group's rows, one after another) -> the cells of one row segment: the group's rows added
// pairwise into the first (a tree: no lane waits on a chain of the others), then that row into totals [column
// segments] (add_row_to_cells).
template <typename L>
void add_lanes_to_cells(L* lanes, int64_t group, int64_t width, const Cut& cols, double* totals) {
  for (int64_t rows = group; rows > 1;) {
    const int64_t half = rows / 2, upper = rows - half;  // rows [upper, rows) onto [upper - half, upper)
    for (int64_t i = 0; i < half * width; ++i) lanes[(upper - half) * width + i] += lanes[upper * width + i];
    rows = upper;
  }
  add_row_to_cells<PlainElements<L>>(lanes, width, cols, totals, /*buffer=*/nullptr);
}

// x [B, C, H, W] (rows contiguous: stride 1 along W, or W = 1) -> each plane's cells [row segments, column segments],
// each cell's total in float64; a plane at a time, its row segments in order:
// - a segment of one row (the borders): its head and tail one by one, the middle columns one run sum;
// - where the columns have no cut and the plane is contiguous: the segment's rows one run sum;
// - otherwise the segment's rows added element by element into lanes of W (a few rows side by side where W is short,
//   a contiguous plane's rows as one run, a column of one value a row by 8 chains), the lanes' columns into the cells
//   every kLaneValuesPerFlush rows.
// Vectorized along W, as ATen's sums over H are; ATen's reductions over a few rows or columns a plane cost more than
// the read (docs/limits.md §87-88).
// Each plane's cells go to a sink (make_sink(), one a task): sink(p, totals [row segments, column segments]), which
// writes them (cell_sums_of_planes) or its taps (tap_sums_of_planes).
template <typename Elements, typename MakeSink>
void for_each_plane_cells(const at::Tensor& x, const Cut& rows, const Cut& cols, const MakeSink& make_sink) {
  using Storage = typename Elements::Storage;
  using Lane = typename Elements::Lane;
  const int64_t channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t batch_stride = x.stride(0), channel_stride = x.stride(1), row_stride = x.stride(2);
  const bool flat = height == 1 || row_stride == width;  // a run of rows is one run of x
  const int64_t col_segments = cols.segments(), plane_cells = rows.segments() * col_segments;
  std::vector<std::pair<int64_t, int64_t>> row_segments;  // (first row, rows), in segment order
  for (const Cut::Piece& piece : rows.pieces(height)) {
    if (piece.middle) {
      row_segments.emplace_back(piece.start, piece.length);
    } else {
      for (int64_t h = piece.start; h < piece.start + piece.length; ++h) row_segments.emplace_back(h, 1);
    }
  }
  const int64_t widest_group = std::max<int64_t>(1, kGroupLanes / width);
  const Storage* x_data = static_cast<const Storage*>(x.const_data_ptr());
  const int64_t grain = std::max<int64_t>(1, kCellTaskElements / std::max<int64_t>(height * width, 1));
  at::parallel_for(0, x.size(0) * channels, grain, [&](int64_t first_plane, int64_t end_plane) {
    std::vector<Lane> lanes(widest_group * width), run_buffer(kWidenedRunPiece);
    std::vector<double> totals(plane_cells);
    auto sink = make_sink();
    int64_t batch = first_plane / channels, channel = first_plane % channels;  // plane p's; no division a plane
    for (int64_t p = first_plane; p < end_plane; ++p) {
      const Storage* plane = x_data + batch * batch_stride + channel * channel_stride;
      if (++channel == channels) {
        channel = 0;
        ++batch;
      }
      std::fill(totals.begin(), totals.end(), 0.0);
      for (size_t segment = 0; segment < row_segments.size(); ++segment) {
        const auto [first_row, segment_rows] = row_segments[segment];
        if (flat && col_segments == 1) {  // whole rows of a contiguous plane: one run, no lanes to fold
          totals[segment] += widened_run_sum<Elements>(plane + first_row * width, segment_rows * width,
                                                       run_buffer.data());
          continue;
        }
        double* segment_totals = totals.data() + segment * col_segments;
        if (segment_rows == 1) {  // a border row: straight into the cells, no lanes to fill and fold
          add_row_to_cells<Elements>(plane + first_row * row_stride, width, cols, segment_totals, run_buffer.data());
          continue;
        }
        const bool column = !flat && width == 1;  // one value a row: 8 chains, unrolled
        const int64_t group = std::min<int64_t>(column ? kColumnChains : widest_group, segment_rows);
        const int64_t group_lanes = group * width;
        for (int64_t row = first_row, end = first_row + segment_rows; row < end;) {
          const int64_t flush_end = std::min(end, row + kLaneValuesPerFlush * group);
          if (!column) std::fill_n(lanes.data(), group_lanes, Lane(0));
          if (flat) {  // whole groups, then the last rows into the first lanes
            const Storage* run = plane + row * width;
            const int64_t n = (flush_end - row) * width;
            int64_t i = 0;
            for (; i + group_lanes <= n; i += group_lanes) Elements::add(lanes.data(), run + i, group_lanes);
            Elements::add(lanes.data(), run + i, n - i);
          } else if (column) {
            Lane chains[kColumnChains] = {};
            int64_t r = row;
            for (; r + kColumnChains <= flush_end; r += kColumnChains) {
              for (int j = 0; j < kColumnChains; ++j) chains[j] += Elements::widen(plane[(r + j) * row_stride]);
            }
            for (int j = 0; r < flush_end; ++r, ++j) chains[j] += Elements::widen(plane[r * row_stride]);
            std::copy_n(chains, group, lanes.data());
          } else {
            Lane* group_lane = lanes.data();
            for (int64_t r = row; r < flush_end; ++r) {
              Elements::add(group_lane, plane + r * row_stride, width);
              group_lane = group_lane + width == lanes.data() + group_lanes ? lanes.data() : group_lane + width;
            }
          }
          add_lanes_to_cells(lanes.data(), std::min(group, flush_end - row), width, cols, segment_totals);
          row = flush_end;
        }
      }
      sink(p, totals.data());
    }
  });
}

// Channels a task of the channel loops adds (512 bytes of a 16-bit pixel), and the fewest they take at all: a call a
// pixel for a few channels costs more than ATen's conversion ([3377, 18, 23, 3] float16: the forward 1.26 ms by the
// loop, 0.67 by ATen; 2 cores). channel_plane_sums also takes planes of kPlaneLoopMinPlaneElements pixels or more
// only ([79137, 53, 1, 1] float16: 28-34 ms by the loop, 4.5-6.1 by ATen).
constexpr int64_t kChannelBlock = 256, kChannelLoopMinChannels = 64;

// x [B, C, H, W] whose channels are contiguous (stride 1 along C) -> cells [B, C, row segments, column segments] in
// the lane type, contiguous, each cell's total in float64: tasks of (batch, block of channels), each pixel's channels
// added into the cell of its row and column, vectorized along C; a row's middle columns into lanes of float32 first,
// into the cell every kLaneValuesPerFlush pixels. segment_sums' ATen pieces over channels-last views had been 1.1-1.6
// times the shortcut's time (docs/limits.md §88).
template <typename Elements>
void add_cells_of_channels(const at::Tensor& x, const Cut& rows, const Cut& cols, at::Tensor& cells) {
  using Storage = typename Elements::Storage;
  using Lane = typename Elements::Lane;
  const int64_t channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t col_segments = cols.segments(), plane_cells = rows.segments() * col_segments;
  const int64_t tail_segment = cols.head + (cols.middle > 0 ? 1 : 0);
  std::vector<int64_t> row_segment(height);
  for (int64_t h = 0; h < height; ++h) row_segment[h] = rows.segment(h);
  const Storage* x_data = static_cast<const Storage*>(x.const_data_ptr());
  Lane* cells_data = cells.mutable_data_ptr<Lane>();
  const int64_t batch_stride = x.stride(0), row_stride = x.stride(2), pixel_stride = x.stride(3);
  at::parallel_for(0, x.size(0) * blocks, 1, [&](int64_t first_task, int64_t end_task) {
    std::vector<double> totals(plane_cells * kChannelBlock);  // [cell, channel of the block]
    std::vector<Lane> lanes(kChannelBlock);
    for (int64_t task = first_task; task < end_task; ++task) {
      const int64_t b = task / blocks, first_channel = task % blocks * kChannelBlock;
      const int64_t count = std::min(kChannelBlock, channels - first_channel);
      const auto add_pixel = [&](double* cell, const Storage* values) {
        for (int64_t c = 0; c < count; ++c) cell[c] += Elements::widen(values[c]);
      };
      std::fill_n(totals.data(), plane_cells * count, 0.0);
      const Storage* batch_data = x_data + b * batch_stride + first_channel;
      for (int64_t h = 0; h < height; ++h) {
        const Storage* row = batch_data + h * row_stride;
        double* row_cells = totals.data() + row_segment[h] * col_segments * count;
        for (int64_t w = 0; w < cols.head; ++w) add_pixel(row_cells + w * count, row + w * pixel_stride);
        for (int64_t w = cols.head, end = cols.head + cols.middle; w < end;) {
          const int64_t flush_end = std::min(end, w + kLaneValuesPerFlush);
          std::fill_n(lanes.data(), count, Lane(0));
          for (; w < flush_end; ++w) Elements::add(lanes.data(), row + w * pixel_stride, count);
          double* middle_cell = row_cells + cols.head * count;
          for (int64_t c = 0; c < count; ++c) middle_cell[c] += lanes[c];
        }
        for (int64_t w = 0; w < cols.tail; ++w) {
          add_pixel(row_cells + (tail_segment + w) * count, row + (width - cols.tail + w) * pixel_stride);
        }
      }
      Lane* out = cells_data + (b * channels + first_channel) * plane_cells;
      for (int64_t c = 0; c < count; ++c) {
        for (int64_t q = 0; q < plane_cells; ++q) out[c * plane_cells + q] = static_cast<Lane>(totals[q * count + c]);
      }
    }
  });
}

// fn(Elements{}) for x's dtype (float32, float64, float16, bfloat16).
template <typename Fn>
void with_elements(at::ScalarType dtype, const char* what, const Fn& fn) {
  switch (dtype) {
    case at::kDouble:
      return fn(PlainElements<double>{});
    case at::kFloat:
      return fn(PlainElements<float>{});
    case at::kHalf:
      return fn(HalfElements{});
    case at::kBFloat16:
      return fn(BFloat16Elements{});
    default:
      TORCH_INTERNAL_ASSERT(false, what, ": no loop for ", dtype);
  }
}

// block [B, C, rows, columns] (a view of x, any strides) -> [B, C, rows * columns] in the accumulation type: each
// plane's elements widened in a loop. ATen's strided copy with its conversion took 6.6 ms for r26's kept block, runs
// of 2 elements (kept_element_block).
template <typename Elements>
at::Tensor widened_block(const at::Tensor& block) {
  using Storage = typename Elements::Storage;
  using Lane = typename Elements::Lane;
  const int64_t channels = block.size(1), rows = block.size(2), cols = block.size(3), plane = rows * cols;
  at::Tensor out = at::empty({block.size(0), channels, plane}, block.options().dtype(c10::CppTypeToScalarType<Lane>()));
  const Storage* data = static_cast<const Storage*>(block.const_data_ptr());
  Lane* out_data = out.mutable_data_ptr<Lane>();
  const int64_t batch_stride = block.stride(0), channel_stride = block.stride(1);
  const int64_t row_stride = block.stride(2), col_stride = block.stride(3);
  const int64_t grain = std::max<int64_t>(1, kCellTaskElements / std::max<int64_t>(plane, 1));
  at::parallel_for(0, block.size(0) * channels, grain, [&](int64_t first_plane, int64_t end_plane) {
    int64_t b = first_plane / channels, c = first_plane % channels;
    for (int64_t p = first_plane; p < end_plane; ++p, c = c + 1 == channels ? (++b, 0) : c + 1) {
      const Storage* values = data + b * batch_stride + c * channel_stride;
      Lane* out_plane = out_data + p * plane;
      for (int64_t r = 0; r < rows; ++r) {
        const Storage* row = values + r * row_stride;
        for (int64_t q = 0; q < cols; ++q) out_plane[r * cols + q] = Elements::widen(row[q * col_stride]);
      }
    }
  });
  return out;
}

// cells [planes, row segments, column segments] (contiguous) -> taps [planes, kH, kW]: each tap's kept rectangle of
// cells added, columns first, then rows (as tap_sums_of_cells).
// Each tap's run of kept segments, by rows and by columns (Cut::kept_segments).
struct TapRanges {
  std::vector<std::pair<int64_t, int64_t>> rows, cols;
};

TapRanges tap_ranges(const Cut& rows, const Cut& cols) {
  TapRanges ranges;
  for (size_t t = 0; t < rows.kept.size(); ++t) ranges.rows.push_back(rows.kept_segments(static_cast<int64_t>(t)));
  for (size_t t = 0; t < cols.kept.size(); ++t) ranges.cols.push_back(cols.kept_segments(static_cast<int64_t>(t)));
  return ranges;
}

// One plane's cells [row segments, column segments] -> its taps [kH, kW]: each tap's kept cells added (never
// subtracted: an infinity in a cropped border stays out of the taps that crop it), columns first, then rows;
// by_column_tap [row segments, kW] scratch.
template <typename C, typename T>
void add_plane_taps(const C* cells, int64_t row_segments, int64_t col_segments, const TapRanges& ranges,
                    C* by_column_tap, T* taps) {
  const int64_t kernel_h = static_cast<int64_t>(ranges.rows.size());
  const int64_t kernel_w = static_cast<int64_t>(ranges.cols.size());
  for (int64_t r = 0; r < row_segments; ++r) {
    for (int64_t t = 0; t < kernel_w; ++t) {
      C sum = 0;
      for (int64_t q = ranges.cols[t].first; q < ranges.cols[t].second; ++q) sum += cells[r * col_segments + q];
      by_column_tap[r * kernel_w + t] = sum;
    }
  }
  for (int64_t t = 0; t < kernel_h; ++t) {
    for (int64_t u = 0; u < kernel_w; ++u) {
      C sum = 0;
      for (int64_t r = ranges.rows[t].first; r < ranges.rows[t].second; ++r) sum += by_column_tap[r * kernel_w + u];
      taps[t * kernel_w + u] = static_cast<T>(sum);
    }
  }
}

template <typename T>
void add_taps_of_cells(const at::Tensor& cells, const TapRanges& ranges, at::Tensor& taps) {
  const int64_t row_segments = cells.size(2), col_segments = cells.size(3);
  const int64_t plane_taps = static_cast<int64_t>(ranges.rows.size() * ranges.cols.size());
  const T* cells_data = cells.const_data_ptr<T>();
  T* taps_data = taps.mutable_data_ptr<T>();
  const int64_t plane_cells = row_segments * col_segments;
  const int64_t grain = std::max<int64_t>(1, kCellTaskElements / plane_cells);
  at::parallel_for(0, cells.size(0) * cells.size(1), grain, [&](int64_t first_plane, int64_t end_plane) {
    std::vector<T> by_column_tap(row_segments * ranges.cols.size());
    for (int64_t p = first_plane; p < end_plane; ++p) {
      add_plane_taps(cells_data + p * plane_cells, row_segments, col_segments, ranges, by_column_tap.data(),
                     taps_data + p * plane_taps);
    }
  });
}

at::Tensor empty_taps(const at::Tensor& like, const TapRanges& ranges, at::ScalarType dtype) {
  return at::empty({like.size(0), like.size(1), static_cast<int64_t>(ranges.rows.size()),
                    static_cast<int64_t>(ranges.cols.size())}, like.options().dtype(dtype));
}

}  // namespace

at::Tensor tap_sums_of_cpu_cells(const at::Tensor& cells, const Cut& rows, const Cut& cols) {
  const TapRanges ranges = tap_ranges(rows, cols);
  at::Tensor taps = empty_taps(cells, ranges, cells.scalar_type());
  if (cells.scalar_type() == at::kDouble) {
    add_taps_of_cells<double>(cells, ranges, taps);
  } else {
    add_taps_of_cells<float>(cells, ranges, taps);
  }
  return taps;
}

namespace {

bool loop_dtype(at::ScalarType dtype) {  // with_elements' dtypes
  return dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16;
}

// The channel loops' x: channels contiguous, and enough of them.
bool channel_loop_layout(const at::Tensor& x) {
  return x.stride(1) == 1 && x.size(1) >= kChannelLoopMinChannels;
}

at::Tensor empty_cells(const at::Tensor& x, const Cut& rows, const Cut& cols) {
  return at::empty({x.size(0), x.size(1), rows.segments(), cols.segments()},
                   x.options().dtype(accumulation_type(x.scalar_type())));
}

}  // namespace

bool plane_loop_apply(const at::Tensor& x) {
  const bool narrow = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  // Every thread a plane at least: the loop splits x by planes.
  return x.is_cpu() && loop_dtype(x.scalar_type()) && (x.stride(3) == 1 || x.size(3) == 1) &&
         x.size(0) * x.size(1) >= at::get_num_threads() &&
         (narrow || x.size(2) * x.size(3) <= kWidePlaneLoopMaxElements);
}

at::Tensor cell_sums_of_planes(const at::Tensor& x, const Cut& rows, const Cut& cols) {
  at::Tensor cells = empty_cells(x, rows, cols);
  const int64_t plane_cells = rows.segments() * cols.segments();
  with_elements(x.scalar_type(), "cell_sums_of_planes", [&](auto elements) {
    using Lane = typename decltype(elements)::Lane;
    Lane* cells_data = cells.mutable_data_ptr<Lane>();
    for_each_plane_cells<decltype(elements)>(x, rows, cols, [&] {
      return [&](int64_t p, const double* totals) {
        Lane* out = cells_data + p * plane_cells;
        for (int64_t q = 0; q < plane_cells; ++q) out[q] = static_cast<Lane>(totals[q]);
      };
    });
  });
  return cells;
}

at::Tensor tap_sums_of_planes(const at::Tensor& x, const Cut& rows, const Cut& cols) {
  const TapRanges ranges = tap_ranges(rows, cols);
  at::Tensor taps = empty_taps(x, ranges, accumulation_type(x.scalar_type()));
  const int64_t row_segments = rows.segments(), col_segments = cols.segments();
  const int64_t plane_taps = static_cast<int64_t>(ranges.rows.size() * ranges.cols.size());
  with_elements(x.scalar_type(), "tap_sums_of_planes", [&](auto elements) {
    using Lane = typename decltype(elements)::Lane;
    Lane* taps_data = taps.mutable_data_ptr<Lane>();
    for_each_plane_cells<decltype(elements)>(x, rows, cols, [&] {
      return [&, by_column_tap = std::vector<double>(row_segments * ranges.cols.size())](
                 int64_t p, const double* totals) mutable {
        add_plane_taps(totals, row_segments, col_segments, ranges, by_column_tap.data(), taps_data + p * plane_taps);
      };
    });
  });
  return taps;
}

bool channel_loop_apply(const at::Tensor& x) {
  // Two tasks at least, so that a second thread has work.
  return x.is_cpu() && loop_dtype(x.scalar_type()) && channel_loop_layout(x) &&
         x.size(0) * ((x.size(1) + kChannelBlock - 1) / kChannelBlock) >= 2;
}

at::Tensor cell_sums_of_channels(const at::Tensor& x, const Cut& rows, const Cut& cols) {
  at::Tensor cells = empty_cells(x, rows, cols);
  with_elements(x.scalar_type(), "cell_sums_of_channels",
                [&](auto elements) { add_cells_of_channels<decltype(elements)>(x, rows, cols, cells); });
  return cells;
}

namespace {

// Planes of fewer elements go through ATen in plane_sums.
constexpr int64_t kPlaneLoopMinPlaneElements = 64;

// 16-bit x [B, C, H, W] whose channels are contiguous (stride 1 along C: channels-last and its slices) -> [B, C] in
// float32, widened in the loop: tasks of (batch, range of pixels, block of channels), each pixel's channels added into
// lanes, into float64 partial sums [B, ranges, C] every kLaneValuesPerFlush pixels; the ranges then added. Pixel
// ranges give every thread work where batches and blocks are few. ATen's conversion by pieces needs a float32 buffer
// of 4 MiB a call, whose pages are fresh whenever glibc maps it anew: [1, 1439, 64, 45] bfloat16 0.62-0.69 ms where
// the buffer's pages were reused, 2.3-3.0 where not (2 cores; docs/limits.md §88).
template <typename Elements>
at::Tensor channel_plane_sums(const at::Tensor& x) {
  using Storage = typename Elements::Storage;
  using Lane = typename Elements::Lane;
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t pixels = height * width, blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t ranges = std::clamp<int64_t>(4 * at::get_num_threads() / (batch * blocks), 1, pixels);
  const int64_t range_pixels = (pixels + ranges - 1) / ranges;
  at::Tensor partials = at::zeros({batch, ranges, channels}, x.options().dtype(at::kDouble));
  const Storage* x_data = static_cast<const Storage*>(x.const_data_ptr());
  double* partials_data = partials.mutable_data_ptr<double>();
  const int64_t batch_stride = x.stride(0), row_stride = x.stride(2), pixel_stride = x.stride(3);
  at::parallel_for(0, batch * ranges * blocks, 1, [&](int64_t first_task, int64_t end_task) {
    std::vector<Lane> lanes(kChannelBlock);
    for (int64_t task = first_task; task < end_task; ++task) {
      const int64_t block = task % blocks, range = task / blocks % ranges, b = task / (blocks * ranges);
      const int64_t first_channel = block * kChannelBlock, count = std::min(kChannelBlock, channels - first_channel);
      const int64_t first_pixel = std::min(pixels, range * range_pixels);
      const int64_t end_pixel = std::min(pixels, first_pixel + range_pixels);
      const Storage* batch_data = x_data + b * batch_stride + first_channel;
      double* out = partials_data + (b * ranges + range) * channels + first_channel;
      int64_t h = first_pixel / width, w = first_pixel % width;
      for (int64_t p = first_pixel; p < end_pixel;) {
        const int64_t flush_end = std::min(end_pixel, p + kLaneValuesPerFlush);
        std::fill_n(lanes.data(), count, Lane(0));
        for (; p < flush_end; ++p) {
          Elements::add(lanes.data(), batch_data + h * row_stride + w * pixel_stride, count);
          if (++w == width) {
            w = 0;
            ++h;
          }
        }
        for (int64_t c = 0; c < count; ++c) out[c] += lanes[c];
      }
    }
  });
  return partials.sum(1).to(at::kFloat);
}

// x [B, C, H, W] -> [B, C] in the accumulation type: the sum over H and W of each (b, c) plane.
at::Tensor plane_sums(const at::Tensor& x) {
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  if (acc == x.scalar_type()) return x.sum({2, 3}, /*keepdim=*/false, acc);
  // 16-bit x widened in the plane loop, no float32 copy; tiny planes by ATen's conversion and sum (below), which the
  // loop's fixed cost a plane did not beat there (2 cores, [17476, 8, 5, 6] bfloat16: the forward 4.7 ms that way,
  // 5.8-6.1 by the loop; [4064, 6, 4, 43] float16 1.3-1.8 that way, 1.05 by the loop; docs/limits.md §88).
  if (x.numel() > 0 && x.size(2) * x.size(3) >= kPlaneLoopMinPlaneElements && plane_loop_apply(x)) {
    Cut whole_rows, whole_columns;
    whole_rows.middle = x.size(2);
    whole_columns.middle = x.size(3);
    return cell_sums_of_planes(x, whole_rows, whole_columns).view({x.size(0), x.size(1)});
  }
  if (x.numel() > 0 && channel_loop_layout(x) && x.size(2) * x.size(3) >= kPlaneLoopMinPlaneElements) {
    return x.scalar_type() == at::kHalf ? channel_plane_sums<HalfElements>(x) : channel_plane_sums<BFloat16Elements>(x);
  }
  if (x.numel() <= kConvertPieceElements) return x.sum({2, 3}, /*keepdim=*/false, acc);
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  at::Tensor out = at::empty({batch, channels}, x.options().dtype(acc));
  const int64_t batch_elements = channels * height * width;
  if (batch_elements <= kConvertPieceElements) {
    for_each_converted_batches(x, acc, [&](const at::Tensor& values, int64_t first, int64_t count) {
      at::Tensor piece_out = out.narrow(0, first, count);
      at::sum_out(piece_out, values, {2, 3});
    });
    return out;
  }
  // A batch at a time, by pieces of whole rows of every channel (in channels-last x, one block of memory); the pieces'
  // sums added in float64.
  const int64_t piece_rows = std::clamp<int64_t>(kConvertPieceElements / (channels * width), 1, height);
  const at::Tensor buffer = at::empty_like(x[0].narrow(1, 0, piece_rows), x.options().dtype(acc));
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor total = at::zeros({channels}, x.options().dtype(at::kDouble));
    for (int64_t row = 0; row < height; row += piece_rows) {
      const int64_t count = std::min(piece_rows, height - row);
      total += buffer.narrow(1, 0, count).copy_(x[b].narrow(1, row, count)).sum({1, 2});
    }
    out[b].copy_(total);
  }
  return out;
}

at::Tensor sum_hw_cpu(const at::Tensor& x) {
  check_sum_hw_args(x);
  const NoAutocast no_autocast;
  return plane_sums(x);
}

// Logits of gemm_bias_lse's chunks: about 2^18 elements (1 MiB of float32), and at least 512 rows, so a GEMM of a
// deep weight keeps its rows. Made whole, the [B, C_out] logits and each of their temporaries are fresh memory, and
// its pages cost more than the arithmetic: 2 cores, rows x weight [13107, 10] x [10, 755] then logsumexp 74-88 ms in
// one piece, 11-18 by chunks; [524288, 4] x [4, 64] 204-222 against 31-57; [512, 2048] x [2048, 8192] level
// (docs/limits.md §87).
constexpr int64_t kLogitChunkElements = int64_t{1} << 18;
constexpr int64_t kLogitChunkMinRows = 512;

// gemm_bias_lse's rows a chunk, for logits of `logit_columns` a row.
int64_t logit_chunk_rows(int64_t logit_columns) {
  return std::max(kLogitChunkElements / std::max<int64_t>(logit_columns, 1), kLogitChunkMinRows);
}

// taps_gemm_bias_lse's block of the weight's rows: about 2^19 elements (2 MiB of float32), in cache while the GEMM
// reads it.
constexpr int64_t kWeightBlockElements = int64_t{1} << 19;

// rows [B, groups * depth] (in the accumulation type) x blocks [groups, depth, C_out / groups] -> [B, 1]: 10 *
// logsumexp over C_out of scale * (each group's rows by its own block of the weight) + total_bias [C_out], a chunk of
// rows at a time into one buffer. A group's logits come from its own rows only: the dense block-diagonal weight's zeros
// times an infinite sum of another group would make every logit NaN, where the model keeps the other groups' logits
// finite (+inf in one channel: +inf, not NaN).
at::Tensor gemm_bias_lse(const at::Tensor& rows, const at::Tensor& blocks, const at::Tensor& total_bias, double scale) {
  const int64_t batch = rows.size(0), groups = blocks.size(0), depth = blocks.size(1), group_out = blocks.size(2);
  at::Tensor out = at::empty({batch, 1}, rows.options());
  if (batch == 0) return out;
  const int64_t chunk_rows = std::min(batch, logit_chunk_rows(groups * group_out));
  const at::Tensor logits = at::empty({groups, chunk_rows, group_out}, rows.options());
  const at::Tensor bias_row = total_bias.reshape({-1}), group_bias = bias_row.view({groups, 1, group_out});
  for (int64_t first = 0; first < batch; first += chunk_rows) {
    const int64_t count = std::min(chunk_rows, batch - first);
    const at::Tensor chunk = rows.narrow(0, first, count);
    at::Tensor chunk_logits = logits.narrow(1, 0, count);
    if (groups == 1) {
      at::Tensor logits_2d = chunk_logits[0];
      at::addmm_out(logits_2d, bias_row, chunk, blocks[0], /*beta=*/1, /*alpha=*/scale);
    } else {
      const at::Tensor group_rows = chunk.reshape({count, groups, depth}).transpose(0, 1);  // [groups, count, depth]
      at::baddbmm_out(chunk_logits, group_bias, group_rows, blocks, /*beta=*/1, /*alpha=*/scale);
    }
    at::Tensor chunk_out = out.narrow(0, first, count).view({count});
    at::logsumexp_out(chunk_out, chunk_logits, at::IntArrayRef{0, 2}, /*keepdim=*/false);
  }
  return out.mul_(10);
}

// gemm_bias_lse over the tap sums [B, C_in, kH, kW] (in the accumulation type, contiguous) and weight [C_in, C_out /
// groups, kH, kW] of a batch in one chunk of logits: the weight's rows (tap_weight_rows' [C_in * kH * kW, C_out]) a
// block of channels at a time into one buffer, each block's product added into the logits. Whole, the rows were a
// permuted copy into fresh memory (float32 for 16-bit weight): r06's [2048, 1024, 3, 3] float16 weight, 75 MB, its
// copy and GEMM 43 ms against 28 by blocks (2 cores, docs/limits.md §91).
at::Tensor taps_gemm_bias_lse(const at::Tensor& taps, const at::Tensor& weight, int64_t groups,
                              const at::Tensor& total_bias, double scale) {
  const int64_t batch = taps.size(0), c_in = taps.size(1), tap_count = taps.size(2) * taps.size(3);
  const int64_t group_in = c_in / groups, group_out = weight.size(1);
  const at::Tensor rows = taps.reshape({batch, c_in * tap_count});
  const at::Tensor logits = at::empty({groups, batch, group_out}, taps.options());
  const int64_t block = std::clamp<int64_t>(kWeightBlockElements / (tap_count * group_out), 1, group_in);
  const at::Tensor buffer = at::empty({block, tap_count, group_out}, taps.options());
  const at::Tensor group_bias = total_bias.reshape({groups, group_out});
  for (int64_t g = 0; g < groups; ++g) {
    at::Tensor group_logits = logits[g];
    for (int64_t first = 0; first < group_in; first += block) {
      const int64_t count = std::min(block, group_in - first), channel = g * group_in + first;
      at::Tensor block_rows = buffer.narrow(0, 0, count);  // [count, kH * kW, C_out / groups]
      block_rows.copy_(weight.narrow(0, channel, count).reshape({count, group_out, tap_count}).transpose(1, 2));
      const at::Tensor block_weight = block_rows.view({count * tap_count, group_out});
      const at::Tensor block_taps = rows.narrow(1, channel * tap_count, count * tap_count);
      if (first == 0) {
        at::addmm_out(group_logits, group_bias[g], block_taps, block_weight, /*beta=*/1, /*alpha=*/scale);
      } else {
        group_logits.addmm_(block_taps, block_weight, /*beta=*/1, /*alpha=*/scale);
      }
    }
  }
  at::Tensor out = at::empty({batch, 1}, taps.options());
  at::Tensor out_row = out.view({batch});
  at::logsumexp_out(out_row, logits, at::IntArrayRef{0, 2}, /*keepdim=*/false);
  return out.mul_(10);
}

// The diagonal blocks [groups, depth / groups, C_out / groups] of a block-diagonal weight_rows [depth, C_out] (rows
// channel-major, zero between groups: CroppedGemm::weight_rows).
at::Tensor diagonal_blocks(const at::Tensor& weight_rows, int64_t groups) {
  const int64_t depth = weight_rows.size(0), c_out = weight_rows.size(1);
  return weight_rows.view({groups, depth / groups, groups, c_out / groups}).diagonal(0, 0, 2).permute({2, 0, 1});
}

at::Tensor gemm_lse_cpu(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias,
                        double scale) {
  check_gemm_lse_args(sums, weight_sum, total_bias);
  const NoAutocast no_autocast;
  return gemm_bias_lse(sums, weight_sum.unsqueeze(0), total_bias, scale);
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                               const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef output_padding, at::IntArrayRef dilation,
                                               int64_t groups, bool keep_sums) {
  const ForwardShape s =
      check_forward_args(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, groups);
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  const NoAutocast no_autocast;
  // A bias of one value for every channel (check_bias_shape) becomes C_out of them: the GEMMs below take a bias
  // row of C_out, which only conv_bias's broadcast had given it.
  at::Tensor total_bias = bias.reshape({-1}).to(acc).expand({s.out_channels});
  total_bias = conv_bias.has_value() ? total_bias + conv_bias->to(acc) : total_bias.contiguous();
  at::Tensor out, sums;
  if (s.conv.crops()) {
    // padding > 0: the GEMM over cells or taps (fusedlse.h); the per-tap sums are the op's second output.
    const bool over_cells = cropped_gemm_over_cells(s, /*cell_weight_one_pass=*/false);  // ATen's passes
    // Over taps no cells are needed: tap_sums (the plane loop's taps without a cells tensor, where it applies).
    // Over cells that are x's elements, without the sums, only the kept ones widened where some are not kept
    // (kept_element_block). All of x as one dense copy (cell_sums): the loop a plane at a time took 14 ms where
    // that took 2 (r22 [79137, 53, 1, 1] float16 channels-last at padding 1, every element kept; docs/limits.md §91).
    const at::Tensor kept_block = over_cells && !keep_sums ? kept_element_block(x, s) : at::Tensor();
    const bool kept_only =
        kept_block.defined() && loop_dtype(x.scalar_type()) && kept_block.numel() < x.numel();
    at::Tensor cells;
    if (kept_only) {
      with_elements(x.scalar_type(), "widened_block", [&](auto elements) {
        cells = widened_block<decltype(elements)>(kept_block);
      });
    } else if (over_cells) {
      cells = cell_sums(x, s);
      if (keep_sums) sums = tap_sums_of_cells(cells, s);
    } else {
      sums = tap_sums(x, s);
    }
    if (s.batch > 0 && !over_cells && s.batch <= logit_chunk_rows(s.out_channels)) {
      out = taps_gemm_bias_lse(sums, weight, s.conv.groups, total_bias, s.scale);
    } else if (s.batch > 0) {
      const CroppedGemm gemm =
          cropped_gemm_operands(over_cells, cells, /*cells_kept_only=*/kept_only, sums, weight, s);
      out = gemm_bias_lse(gemm.x_rows, diagonal_blocks(gemm.weight_rows, s.conv.groups), total_bias, s.scale);
    }
  } else {
    sums = plane_sums(x);
    if (s.batch > 0) {
      // The grouped weight's W.sum [C_in, C_out / groups] is its groups' blocks, one after another. plane_sums, as
      // x's: ATen's sum of a 16-bit weight into float32 took 18 ms where plane_sums' pieces converted at a time took
      // 4.4 (r18's [445, 2892, 4, 2] float16, 2 cores; the forward 19 ms against the shortcut's 5.7). A 1 x 1
      // kernel's W.sum is W: ATen's sum over its two dimensions of one copied it (r23's [686, 3860, 1, 1] float64,
      // 1.64 ms of the forward's 2.58 against the shortcut's 2.05; docs/limits.md §90).
      const int64_t groups = s.conv.groups;
      const at::Tensor weight_sum = s.kernel_h * s.kernel_w == 1
                                        ? weight.reshape({weight.size(0), weight.size(1)})
                                        : plane_sums(weight);
      const at::Tensor blocks =
          weight_sum.to(acc).reshape({groups, s.in_channels / groups, s.out_channels / groups});
      out = gemm_bias_lse(sums, blocks, total_bias, s.scale);
    }
  }
  out = s.batch > 0 ? out.to(x.scalar_type()) : at::empty({0, 1}, x.options());
  return {out, keep_sums ? sums : no_sums(x)};
}

at::Tensor broadcast_hw_cpu(const at::Tensor& rows, int64_t height, int64_t width, at::ScalarType dtype,
                            bool channels_last) {
  at::Tensor out = empty_broadcast_hw(rows, height, width, dtype, channels_last);
  const NoAutocast no_autocast;
  return out.copy_(rows.to(dtype).view({rows.size(0), rows.size(1), 1, 1}).expand(out.sizes()));
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("sum_hw", &sum_hw_cpu);
  m.impl("gemm_lse", &gemm_lse_cpu);
  m.impl("broadcast_hw", &broadcast_hw_cpu);
  m.impl("explain", [](const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                       at::IntArrayRef output_padding, at::IntArrayRef dilation, int64_t groups) -> std::string {
    check_shape_args(x, weight, stride, padding, output_padding, dilation, groups);
    return "{\"strategy\": \"cpu\", \"why\": \"CPU tensors: x.sum, matmul and logsumexp through ATen\"}";
  });
}

}  // namespace fusedlse
