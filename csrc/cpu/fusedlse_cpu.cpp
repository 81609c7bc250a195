// CPU backend: the same semantics as the CUDA kernels, through ATen, and loops of its own for the padded sums of
// small planes.

#include "../fusedlse.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace fusedlse {
namespace {

// Planes of at most this many elements take cell_sums_of_rows' loop; larger ones segment_sums' ATen pieces, whose
// vectorized sum of the middle block the loop did not match (2 cores, 2 x 2 kernel at padding 1, ms, the loop / ATen's
// pieces: [17476, 8, 5, 6] float32 7.1 / 11.1, bfloat16 7.6 / 14.6; [12, 166, 25, 39] 0.44 / 0.45; [8, 19, 109, 244]
// 0.45 / 0.26; [1, 4, 2048, 2048] 3.0 / 1.9).
constexpr int64_t kCellLoopPlaneElements = 8192;

// Elements of 16-bit x converted to float32 at a time, into one buffer (plane_sums, cell_sums_of_rows). ATen's
// x.sum(dtype=float32) of 16-bit x makes a float32 copy of the whole of x first, and its fresh pages cost more than
// the sum: [16, 64, 512, 512] bfloat16 took 310-340 ms that way, the whole forward 35 (contiguous) and 52
// (channels-last) ms by pieces of 2^20 elements, and ATen's sum in bfloat16 itself 9-16 / 33 ms (2 cores;
// docs/limits.md §86). One buffer for every piece: the allocator is asked once a call.
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

// The sum of n consecutive values: runs under 32 one by one; longer ones in 8 vectors of 16 bytes (GCC's and Clang's
// vector extensions: registers whose adds are independent; an array of 32 lanes, which the compiler vectorized, stayed
// in memory and stalled on its own stores: [12, 166, 25, 39] float32 at padding 1, tap_sums 1.7 ms on one core that
// way, 0.42 this), flushed to a float64 total every kRunLaneElements.
template <typename T>
double run_sum(const T* values, int64_t n) {
  if (n < 32) {
    T short_sum = 0;
    for (int64_t i = 0; i < n; ++i) short_sum += values[i];
    return static_cast<double>(short_sum);
  }
#if defined(__GNUC__)
  typedef T Vector __attribute__((vector_size(16)));
  constexpr int kPerVector = 16 / sizeof(T), kVectors = 8, kStep = kPerVector * kVectors;
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

// Planes a task of cell_sums_of_rows takes: about 2^15 elements' worth, at least one plane.
constexpr int64_t kCellTaskElements = int64_t{1} << 15;

// x [B, C, H, W] (float32 or float64, rows contiguous) -> cells [B, C, row segments, column segments] of its type,
// contiguous: a plane at a time, its rows by the column cut's pieces (head and tail one by one, the middle one run),
// each cell's total in float64.
template <typename T>
void add_cells_of_rows(const at::Tensor& x, const std::vector<int64_t>& row_segment, const Cut& cols,
                       at::Tensor& cells) {
  const int64_t channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t batch_stride = x.stride(0), channel_stride = x.stride(1), row_stride = x.stride(2);
  const int64_t col_segments = cols.segments(), plane_cells = cells.size(2) * col_segments;
  const int64_t middle_segment = cols.head, tail_segment = cols.head + (cols.middle > 0 ? 1 : 0);
  const T* x_data = x.const_data_ptr<T>();
  T* cells_data = cells.mutable_data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, kCellTaskElements / std::max<int64_t>(height * width, 1));
  at::parallel_for(0, x.size(0) * channels, grain, [&](int64_t first_plane, int64_t end_plane) {
    std::vector<double> totals(plane_cells);
    for (int64_t p = first_plane; p < end_plane; ++p) {
      const T* plane = x_data + (p / channels) * batch_stride + (p % channels) * channel_stride;
      std::fill(totals.begin(), totals.end(), 0.0);
      for (int64_t h = 0; h < height; ++h) {
        const T* row = plane + h * row_stride;
        double* row_totals = totals.data() + row_segment[h] * col_segments;
        for (int64_t w = 0; w < cols.head; ++w) row_totals[w] += row[w];
        if (cols.middle > 0) row_totals[middle_segment] += run_sum(row + cols.head, cols.middle);
        const T* tail = row + width - cols.tail;
        for (int64_t w = 0; w < cols.tail; ++w) row_totals[tail_segment + w] += tail[w];
      }
      T* out = cells_data + p * plane_cells;
      for (int64_t q = 0; q < plane_cells; ++q) out[q] = static_cast<T>(totals[q]);
    }
  });
}

// cells [planes, row segments, column segments] (contiguous) -> taps [planes, kH, kW]: each tap's kept rectangle of
// cells added, columns first, then rows (as tap_sums_of_cells).
template <typename T>
void add_taps_of_cells(const at::Tensor& cells, const std::vector<std::pair<int64_t, int64_t>>& row_taps,
                       const std::vector<std::pair<int64_t, int64_t>>& col_taps, at::Tensor& taps) {
  const int64_t row_segments = cells.size(2), col_segments = cells.size(3);
  const int64_t kernel_h = static_cast<int64_t>(row_taps.size()), kernel_w = static_cast<int64_t>(col_taps.size());
  const T* cells_data = cells.const_data_ptr<T>();
  T* taps_data = taps.mutable_data_ptr<T>();
  const int64_t plane_cells = row_segments * col_segments;
  const int64_t grain = std::max<int64_t>(1, kCellTaskElements / plane_cells);
  at::parallel_for(0, cells.size(0) * cells.size(1), grain, [&](int64_t first_plane, int64_t end_plane) {
    std::vector<T> by_column_tap(row_segments * kernel_w);
    for (int64_t p = first_plane; p < end_plane; ++p) {
      const T* plane = cells_data + p * plane_cells;
      for (int64_t r = 0; r < row_segments; ++r) {
        for (int64_t t = 0; t < kernel_w; ++t) {
          T sum = 0;
          for (int64_t q = col_taps[t].first; q < col_taps[t].second; ++q) sum += plane[r * col_segments + q];
          by_column_tap[r * kernel_w + t] = sum;
        }
      }
      T* out = taps_data + p * kernel_h * kernel_w;
      for (int64_t t = 0; t < kernel_h; ++t) {
        for (int64_t u = 0; u < kernel_w; ++u) {
          T sum = 0;
          for (int64_t r = row_taps[t].first; r < row_taps[t].second; ++r) sum += by_column_tap[r * kernel_w + u];
          out[t * kernel_w + u] = sum;
        }
      }
    }
  });
}

}  // namespace

at::Tensor tap_sums_of_cpu_cells(const at::Tensor& cells, const Cut& rows, const Cut& cols) {
  std::vector<std::pair<int64_t, int64_t>> row_taps, col_taps;
  for (size_t t = 0; t < rows.kept.size(); ++t) row_taps.push_back(rows.kept_segments(static_cast<int64_t>(t)));
  for (size_t t = 0; t < cols.kept.size(); ++t) col_taps.push_back(cols.kept_segments(static_cast<int64_t>(t)));
  at::Tensor taps = at::empty({cells.size(0), cells.size(1), static_cast<int64_t>(row_taps.size()),
                               static_cast<int64_t>(col_taps.size())}, cells.options());
  if (cells.scalar_type() == at::kDouble) {
    add_taps_of_cells<double>(cells, row_taps, col_taps, taps);
  } else {
    add_taps_of_cells<float>(cells, row_taps, col_taps, taps);
  }
  return taps;
}

bool cell_sums_of_rows_apply(const at::Tensor& x) {
  if (!x.is_cpu() || (x.stride(3) != 1 && x.size(3) > 1)) return false;
  if (x.size(2) * x.size(3) > kCellLoopPlaneElements) return false;
  return accumulation_type(x.scalar_type()) == x.scalar_type() ||
         x.size(1) * x.size(2) * x.size(3) <= kConvertPieceElements;
}

at::Tensor cell_sums_of_rows(const at::Tensor& x, const Cut& rows, const Cut& cols, at::ScalarType acc) {
  at::Tensor cells = at::empty({x.size(0), x.size(1), rows.segments(), cols.segments()}, x.options().dtype(acc));
  std::vector<int64_t> row_segment(x.size(2));
  for (int64_t h = 0; h < x.size(2); ++h) row_segment[h] = rows.segment(h);
  const auto add = [&](const at::Tensor& values, at::Tensor& out) {
    if (acc == at::kDouble) {
      add_cells_of_rows<double>(values, row_segment, cols, out);
    } else {
      add_cells_of_rows<float>(values, row_segment, cols, out);
    }
  };
  if (x.scalar_type() == acc) {
    add(x, cells);
    return cells;
  }
  // 16-bit x: converted by ATen a few batches at a time (vectorized; this loop's own conversion of 16-bit values was
  // not: bfloat16 1.35 ns an element against float32's 0.04).
  for_each_converted_batches(x, acc, [&](const at::Tensor& values, int64_t first, int64_t count) {
    at::Tensor out = cells.narrow(0, first, count);
    add(values, out);
  });
  return cells;
}

namespace {

// x [B, C, H, W] -> [B, C] in the accumulation type: the sum over H and W of each (b, c) plane.
at::Tensor plane_sums(const at::Tensor& x) {
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  if (acc == x.scalar_type() || x.numel() <= kConvertPieceElements) return x.sum({2, 3}, /*keepdim=*/false, acc);
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

// rows [B, groups * depth] (in the accumulation type) x blocks [groups, depth, C_out / groups] -> [B, 1]: 10 *
// logsumexp over C_out of scale * (each group's rows by its own block of the weight) + total_bias [C_out], a chunk of
// rows at a time into one buffer. A group's logits come from its own rows only: the dense block-diagonal weight's zeros
// times an infinite sum of another group would make every logit NaN, where the model keeps the other groups' logits
// finite (+inf in one channel: +inf, not NaN).
at::Tensor gemm_bias_lse(const at::Tensor& rows, const at::Tensor& blocks, const at::Tensor& total_bias, double scale) {
  const int64_t batch = rows.size(0), groups = blocks.size(0), depth = blocks.size(1), group_out = blocks.size(2);
  at::Tensor out = at::empty({batch, 1}, rows.options());
  if (batch == 0) return out;
  const int64_t chunk_rows =
      std::min(batch, std::max(kLogitChunkElements / std::max<int64_t>(groups * group_out, 1), kLogitChunkMinRows));
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
    at::logsumexp_out(chunk_out, chunk_logits, {0, 2}, /*keepdim=*/false);
  }
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
  at::Tensor total_bias = bias.reshape({-1}).to(acc);
  if (conv_bias.has_value()) total_bias = total_bias + conv_bias->to(acc);
  at::Tensor out, sums;
  if (s.conv.crops()) {
    // padding > 0: the GEMM over cells or taps (fusedlse.h); the per-tap sums are the op's second output.
    const at::Tensor cells = cell_sums(x, s);
    const bool over_cells = cropped_gemm_over_cells(s, /*cell_weight_one_pass=*/false);  // ATen's passes
    if (keep_sums || !over_cells) sums = tap_sums_of_cells(cells, s);
    if (s.batch > 0) {
      const CroppedGemm gemm = cropped_gemm_operands(over_cells, cells, /*cells_kept_only=*/false, sums, weight, s);
      out = gemm_bias_lse(gemm.x_rows, diagonal_blocks(gemm.weight_rows, s.conv.groups), total_bias, s.scale);
    }
  } else {
    sums = plane_sums(x);
    if (s.batch > 0) {
      // The grouped weight's W.sum [C_in, C_out / groups] is its groups' blocks, one after another.
      const int64_t groups = s.conv.groups;
      const at::Tensor blocks =
          weight.sum({2, 3}, /*keepdim=*/false, acc).reshape({groups, s.in_channels / groups, s.out_channels / groups});
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
