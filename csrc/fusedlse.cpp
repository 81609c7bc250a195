// The op schema (one TORCH_LIBRARY block), argument validation and shape inference. Backends live in cpu/ and
// cuda/; the fake (shape-only) kernels that let the ops trace under torch.compile are in python/.../ops.py.

#include "fusedlse.h"
#include "plan.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>

namespace fusedlse {
namespace {

// t as a contiguous tensor of `dtype`, in one pass where it must be copied (Tensor::to aliases a view whose suggested
// memory format is the one asked for, contiguous or not; channels-last 16-bit x would take two copies by to() and
// contiguous()).
at::Tensor contiguous_as(const at::Tensor& t, at::ScalarType dtype) {
  if (t.scalar_type() == dtype && t.is_contiguous()) return t;
  return at::empty(t.sizes(), t.options().dtype(dtype)).copy_(t);
}

bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble;
}

void check_float_dtype(const at::Tensor& t, const char* name) {
  FUSEDLSE_CHECK(is_supported_float(t.scalar_type()), name,
              " must be float16, bfloat16, float32 or float64, got ", t.scalar_type());
}

// `first` is the argument the others must agree with ("x" for forward, "sums" for gemm_lse).
void check_same_dtype(const at::Tensor& ref, const char* first, const at::Tensor& t, const char* name) {
  FUSEDLSE_CHECK(t.scalar_type() == ref.scalar_type(), name, " has dtype ", t.scalar_type(), " but ", first,
              " has dtype ", ref.scalar_type(), "; convert one side first, e.g. model.to(", first, ".dtype) or ",
              first, ".to(", t.scalar_type(), ")");
}

void check_same_device(const at::Tensor& ref, const char* first, const at::Tensor& t, const char* name) {
  FUSEDLSE_CHECK(t.device() == ref.device(), name, " is on ", t.device(), " but ", first, " is on ", ref.device(),
              "; move all arguments to one device");
}

// (in - 1) * stride + dilation * (kernel - 1) + output_padding + 1, or an error naming `what` if it overflows int64.
int64_t output_extent(int64_t in, int64_t stride, int64_t dilation, int64_t kernel, int64_t output_padding,
                      const char* what) {
  int64_t spread = 0, reach = 0, extent = 0;
  const bool overflow = __builtin_mul_overflow(in - 1, stride, &spread) ||
                        __builtin_mul_overflow(dilation, kernel - 1, &reach) ||
                        __builtin_add_overflow(spread, reach, &extent) ||
                        __builtin_add_overflow(extent, output_padding + 1, &extent);
  FUSEDLSE_CHECK(!overflow, "the output's ", what, " = (", in, " - 1) * stride ", stride, " + dilation ", dilation,
                 " * (", kernel, " - 1) + output_padding ", output_padding, " + 1 overflows int64; use a smaller "
                 "stride or dilation");
  return extent;
}

// The bias shapes whose meaning in the model is one value per output channel: after the model's broadcast against
// mean(convT(x)) [B, C_out, 1, 1] they give [B, C_out, 1, 1] back. Right-aligned, that is [C_out, 1, 1],
// [1, C_out, 1, 1], [C_out, 1, 1] with leading ones, or one value for every channel ([], [1], [1, 1, 1], ...).
// A bias such as [C_out] or [1, C_out] would broadcast along W in the model (its logsumexp then runs over a
// [B, C_out, 1, C_out] tensor): a different function, which this op does not compute.
void check_bias_shape(const at::Tensor& bias, int64_t c_out) {
  const int64_t dims = bias.dim();
  bool per_channel = dims <= 4;
  for (int64_t d = 0; per_channel && d < dims; ++d) {
    const int64_t axis = 4 - dims + d;  // the model's axis this one lines up with: 0 B, 1 C_out, 2 H, 3 W
    const int64_t size = bias.size(d);
    per_channel = size == 1 || (axis == 1 && size == c_out);
  }
  FUSEDLSE_CHECK(per_channel, "bias must be one value per output channel as the model broadcasts it: shape "
                 "[C_out, 1, 1] = [", c_out, ", 1, 1] (or [1, C_out, 1, 1], or a single value), got shape ",
                 bias.sizes(), "; in the model a bias of this shape would broadcast along B, H or W and give a "
                 "different function (fusedlse_cuda.ModelNew computes it for any bias shape)");
}

// The op's own entry point: from this device-agnostic code a CUDA tensor still reaches the CUDA readers.
at::Tensor call_sum_hw(const at::Tensor& x) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("fusedlse::sum_hw", "").typed<at::Tensor(const at::Tensor&)>();
  return op.call(x);
}

KeptInputs kept_inputs(int64_t in, int64_t full, int64_t stride, int64_t dilation, int64_t padding, int64_t tap) {
  const int64_t offset = tap * dilation;  // below full (checked in check_forward_args), so no overflow
  const int64_t first = std::min(in, offset >= padding ? 0 : (padding - offset - 1) / stride + 1);
  const int64_t last_landing = full - padding - 1 - offset;  // the largest i * stride that survives
  const int64_t end = last_landing < 0 ? 0 : std::min(in, last_landing / stride + 1);
  return {first, std::max(first, end)};
}

// Planes from which a column of one input beside the middle rows goes through fusedlse::sum_hw rather than ATen's
// reduction over H (segment_sums). H200: x [10253, 127, 333, 1] bfloat16, 1.3 million planes, the per-tap sums 1297
// us against 1406; [66, 12, 25977, 1] float16 and [199, 4, 88887, 1] float64, about 800 long planes each, 395 and
// 296 us against 175 and 176 (the readers' split of a few long planes that start off their vectors).
constexpr int64_t kReaderColumnPlanes = int64_t{1} << 16;

// The first and last `band` indices of dimension `dim` of t (`extent` long there) as one view, that dimension split
// in two: [..., 2, band, ...], the second band extent - band on.
at::Tensor both_bands(const at::Tensor& t, int64_t dim, int64_t extent, int64_t band) {
  std::vector<int64_t> sizes = t.sizes().vec(), strides = t.strides().vec();
  sizes[dim] = band;
  sizes.insert(sizes.begin() + dim, 2);
  strides.insert(strides.begin() + dim, (extent - band) * strides[dim]);
  return t.as_strided(sizes, strides, t.storage_offset());
}

// The sums of x over every pair (row segment, column segment) of the cuts: [B, C, row segments, column segments]
// in `acc`. The middle x middle block, nearly all of x, goes through fusedlse::sum_hw (the planned readers, in
// place), and so does a column of one input beside the middle rows where planes are many (W = 1 with padding along
// W: then nearly all of x); the other border rows and columns, a few per plane, through ATen. Each piece's sums are
// written into its place in the cells: concatenated, they made the ATen launches beside the reader of H200 sweep
// shape r25 ([10253, 127, 333, 1] bfloat16, a slice of H and W, k 5 x 5) at padding 1 143 us (620 the reader's);
// written in place, 101 us.
at::Tensor segment_sums(const at::Tensor& x, const Cut& rows, const Cut& cols, at::ScalarType acc) {
  const bool many_planes = x.size(0) * x.size(1) >= kReaderColumnPlanes;
  at::Tensor cells = at::empty({x.size(0), x.size(1), rows.segments(), cols.segments()}, x.options().dtype(acc));
  // Border rows as many at the top as at the bottom go as one piece of both bands (both_bands): one ATen launch for
  // the two. H200, x [10253, 127, 333, 1] bfloat16 (a slice of H and W) at padding 1, its two corner pieces of one
  // element a plane: 103.6 us as two copies (two kernels each, widening), 59.4 as one (docs/limits.md §65).
  const bool paired_rows = rows.head > 0 && rows.head == rows.tail;
  for (const Cut::Piece& r : rows.pieces(x.size(2))) {
    if (paired_rows && !r.middle && r.start > 0) continue;  // the bottom band: with the top one
    const bool bands = paired_rows && !r.middle;
    for (const Cut::Piece& c : cols.pieces(x.size(3))) {
      const at::Tensor columns = x.narrow(3, c.start, c.length);
      const at::Tensor cell_columns = cells.narrow(3, cols.segment(c.start), c.middle ? 1 : c.length);
      if (bands) {
        const at::Tensor v = both_bands(columns, 2, x.size(2), r.length);
        at::Tensor out = both_bands(cell_columns, 2, rows.segments(), r.length);
        if (c.middle) {
          at::sum_out(out, v, {4}, /*keepdim=*/true, acc);
        } else {
          out.copy_(v);
        }
        continue;
      }
      const at::Tensor v = columns.narrow(2, r.start, r.length);
      // A middle piece is one segment; a border piece one segment per row or column.
      at::Tensor out = cell_columns.narrow(2, rows.segment(r.start), r.middle ? 1 : r.length);
      if (r.middle && (c.middle || (c.length == 1 && many_planes))) {
        out.copy_(call_sum_hw(v).view({x.size(0), x.size(1), 1, 1}));
      } else if (r.middle) {
        at::sum_out(out, v, {2}, /*keepdim=*/true, acc);
      } else if (c.middle) {
        at::sum_out(out, v, {3}, /*keepdim=*/true, acc);
      } else {
        out.copy_(v);
      }
    }
  }
  return cells;
}

// broadcast_taps' first step, and the cropped GEMM's weight over cells: taps with the kernel's taps along dims
// tap_dim and tap_dim + 1 ([B, C, kH, kW] of the tap sums' gradient, tap_dim 2; [C_in, kH, kW, C_out] of the weight,
// tap_dim 1) -> the same with row segments and column segments there, each the sum of the taps that keep the segment
// pair.
at::Tensor spread_taps(const at::Tensor& taps, const ForwardShape& s, int64_t tap_dim = 2) {
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  const int64_t row_dim = tap_dim, col_dim = tap_dim + 1;
  // The sum of the taps that keep each (row segment, column segment), added in tap order (tap_sums' adjoint, so no
  // product with a 0/1 mask turns an infinite gradient into NaN). Columns first, then rows.
  std::vector<int64_t> sizes = taps.sizes().vec();
  sizes[col_dim] = cols.segments();
  at::Tensor by_row_tap = at::zeros(sizes, taps.options());
  for (int64_t t = 0; t < s.kernel_w; ++t) {
    const auto [first, end] = cols.kept_segments(t);
    by_row_tap.narrow(col_dim, first, end - first).add_(taps.select(col_dim, t).unsqueeze(col_dim));
  }
  sizes[row_dim] = rows.segments();
  at::Tensor grid = at::zeros(sizes, taps.options());
  for (int64_t t = 0; t < s.kernel_h; ++t) {
    const auto [first, end] = rows.kept_segments(t);
    grid.narrow(row_dim, first, end - first).add_(by_row_tap.select(row_dim, t).unsqueeze(row_dim));
  }
  return grid;
}

}  // namespace

int64_t Cut::segment(int64_t i) const {
  if (i < head) return i;
  const int64_t has_middle = middle > 0 ? 1 : 0;
  return i < head + middle ? head : head + has_middle + (i - head - middle);
}

std::vector<Cut::Piece> Cut::pieces(int64_t in) const {
  std::vector<Piece> p;
  if (head > 0) p.push_back({0, head, false});
  if (middle > 0) p.push_back({head, middle, true});
  if (tail > 0) p.push_back({in - tail, tail, false});
  return p;
}

std::pair<int64_t, int64_t> Cut::kept_segments(int64_t tap) const {
  const KeptInputs k = kept[tap];
  const int64_t first = segment(k.first);
  return {first, k.end > k.first ? segment(k.end - 1) + 1 : first};
}

Cut cut_of(const ForwardShape& s, int dim) {
  const int64_t in = dim == 0 ? s.height : s.width, full = dim == 0 ? s.full_height : s.full_width;
  const int64_t taps = dim == 0 ? s.kernel_h : s.kernel_w;
  Cut c;
  for (int64_t t = 0; t < taps; ++t) {
    const KeptInputs k = kept_inputs(in, full, s.conv.stride[dim], s.conv.dilation[dim], s.conv.padding[dim], t);
    c.kept.push_back(k);
    c.head = std::max(c.head, k.first);
    c.tail = std::max(c.tail, in - k.end);
  }
  if (c.head + c.tail >= in) {  // no input every tap keeps: all one by one
    c.head = in;
    c.tail = 0;
  }
  c.middle = in - c.head - c.tail;
  return c;
}

Cut element_cut(const ForwardShape& s, int dim) {
  Cut c = cut_of(s, dim);
  c.head = dim == 0 ? s.height : s.width;
  c.middle = c.tail = 0;
  return c;
}

Cut tap_cut(const ForwardShape& s, int dim) {
  const int64_t taps = dim == 0 ? s.kernel_h : s.kernel_w;
  Cut c;
  for (int64_t t = 0; t < taps; ++t) c.kept.push_back({t, t + 1});
  c.head = taps;  // every "input" (a tap) a segment of its own
  return c;
}

at::Tensor ungrouped_weight(const at::Tensor& weight, int64_t groups) {
  if (groups == 1) return weight;
  const int64_t in_per_group = weight.size(0) / groups, out_per_group = weight.size(1);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  at::Tensor dense = at::zeros({groups, in_per_group, groups, out_per_group, kh, kw}, weight.options());
  // dense[g, :, g] = group g's weight: the diagonal of dims 0 and 2 (which diagonal() moves last).
  dense.diagonal(0, 0, 2).copy_(weight.reshape({groups, in_per_group, out_per_group, kh, kw}).permute({1, 2, 3, 4, 0}));
  return dense.view({weight.size(0), groups * out_per_group, kh, kw});
}

at::Tensor cell_sums(const at::Tensor& x, const ForwardShape& s) {
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  // Segments in order: cell (r, q) is element (r, q). On the CPU contiguous, for tap_sums_of_cells' loop: ATen's
  // sums over slices of channels-last x took 25 of r06's 65 ms at padding 2 ([128, 2048, 4, 4] float16, 2 cores;
  // the shortcut 60; docs/limits.md §91).
  if (cells_are_elements(s)) {
    return x.is_cpu() ? contiguous_as(x, acc) : x.to(acc);
  }
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  if (x.numel() == 0) {
    return at::zeros({s.batch, s.in_channels, rows.segments(), cols.segments()}, x.options().dtype(acc));
  }
  if (plane_loop_apply(x)) return cell_sums_of_planes(x, rows, cols);
  if (channel_loop_apply(x)) return cell_sums_of_channels(x, rows, cols);
  return segment_sums(x, rows, cols, acc);
}

at::Tensor tap_sums_of_cells(const at::Tensor& cells, const ForwardShape& s) {
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  if (cells.is_cpu() && cells.is_contiguous()) return tap_sums_of_cpu_cells(cells, rows, cols);
  const at::ScalarType acc = cells.scalar_type();
  // A tap's kept inputs are a run of whole segments: sums over slices of the cells, added (never subtracted, so an
  // infinity in a cropped border stays out of the taps that crop it). Columns first, then rows.
  at::Tensor by_column_tap = at::empty({s.batch, s.in_channels, cells.size(2), s.kernel_w}, cells.options());
  for (int64_t t = 0; t < s.kernel_w; ++t) {
    const auto [first, end] = cols.kept_segments(t);
    at::Tensor out = by_column_tap.select(3, t);
    at::sum_out(out, cells.narrow(3, first, end - first), {3}, /*keepdim=*/false, acc);
  }
  at::Tensor sums = at::empty({s.batch, s.in_channels, s.kernel_h, s.kernel_w}, cells.options());
  for (int64_t t = 0; t < s.kernel_h; ++t) {
    const auto [first, end] = rows.kept_segments(t);
    at::Tensor out = sums.select(2, t);
    at::sum_out(out, by_column_tap.narrow(2, first, end - first), {2}, /*keepdim=*/false, acc);
  }
  return sums;
}

at::Tensor tap_sums(const at::Tensor& x, const ForwardShape& s) {
  if (!cells_are_elements(s) && x.numel() > 0 && plane_loop_apply(x)) {
    return tap_sums_of_planes(x, cut_of(s, 0), cut_of(s, 1));
  }
  return tap_sums_of_cells(cell_sums(x, s), s);
}

void broadcast_taps(const at::Tensor& taps, const ForwardShape& s, at::Tensor& out) {
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  const at::Tensor grid = spread_taps(taps, s);
  // Each block of the output from its grid values, the middle ones broadcast, rounded to dtype once.
  for (const Cut::Piece& r : rows.pieces(s.height)) {
    for (const Cut::Piece& c : cols.pieces(s.width)) {
      at::Tensor block = out.narrow(2, r.start, r.length).narrow(3, c.start, c.length);
      const at::Tensor values = grid.narrow(2, rows.segment(r.start), r.middle ? 1 : r.length)
                                    .narrow(3, cols.segment(c.start), c.middle ? 1 : c.length);
      block.copy_(values.expand(block.sizes()));
    }
  }
}

at::Tensor tap_weight_rows(const at::Tensor& weight, const ForwardShape& s) {
  const at::TensorOptions acc = weight.options().dtype(accumulation_type(weight.scalar_type()));
  at::Tensor rows = at::empty({s.in_channels * s.kernel_h * s.kernel_w, s.out_channels}, acc);
  rows.view({s.in_channels, s.kernel_h, s.kernel_w, s.out_channels})
      .copy_(ungrouped_weight(weight, s.conv.groups).permute({0, 2, 3, 1}));
  return rows;
}

namespace {

// Per segment of one dimension's cut, whether some tap keeps it.
std::vector<bool> kept_segments_of(const Cut& cut) {
  std::vector<bool> kept(cut.segments(), false);
  for (size_t t = 0; t < cut.kept.size(); ++t) {
    const auto [first, end] = cut.kept_segments(static_cast<int64_t>(t));
    for (int64_t q = first; q < end; ++q) kept[q] = true;
  }
  return kept;
}

// The kept segments of one cut as a run: one_run where they are [first, first + count).
struct KeptRun {
  bool one_run;
  int64_t first, count;
};

KeptRun kept_run(const std::vector<bool>& kept_segments) {
  const auto first = std::find(kept_segments.begin(), kept_segments.end(), true);
  const auto end = std::find(first, kept_segments.end(), false);
  return KeptRun{std::find(end, kept_segments.end(), true) == kept_segments.end(), first - kept_segments.begin(),
                 end - first};
}

// Whether every segment of both cuts is one row or one column: each cell one element of x.
bool cells_are_single_elements(const ForwardShape& s) { return cut_of(s, 0).middle <= 1 && cut_of(s, 1).middle <= 1; }

}  // namespace

KeptCells kept_cells(const ForwardShape& s) { return kept_cells(cut_of(s, 0), cut_of(s, 1)); }

KeptCells kept_cells(const Cut& rows, const Cut& cols) {
  KeptCells k;
  k.rows = kept_segments_of(rows);
  k.cols = kept_segments_of(cols);
  for (int64_t r = 0; r < rows.segments(); ++r) {
    for (int64_t q = 0; q < cols.segments(); ++q) {
      if (k.rows[r] && k.cols[q]) k.cells.push_back(r * cols.segments() + q);
    }
  }
  return k;
}

bool cells_are_elements(const ForwardShape& s) {
  return cells_are_single_elements(s) && static_cast<int64_t>(kept_cells(s).cells.size()) == s.height * s.width;
}

bool cropped_gemm_over_cells(const ForwardShape& s, bool cell_weight_one_pass) {
  const int64_t kept = static_cast<int64_t>(kept_cells(s).cells.size()), taps = s.kernel_h * s.kernel_w;
  const bool fewer = kept > 0 && (kept < taps || (kept == taps && cells_are_elements(s)));
  if (!fewer || cell_weight_one_pass) return fewer;
  // ATen's passes over the weight are worth the GEMM's savings only where the weight is small beside x (H200 sweep
  // shape [73, 276, 12, 123] -> 3295, k 3 x 5: 9 cells against 15 taps, the forward 235 us over taps, 490 over
  // cells with the weight's passes strided).
  const double weight_values = static_cast<double>(s.in_channels) * s.out_channels * (taps + kept);
  const double x_values = static_cast<double>(s.batch) * s.in_channels * s.height * s.width;
  return weight_values * kCellWeightShare <= x_values;
}

int64_t cropped_gemm_per_channel(const ForwardShape& s, bool over_cells) {
  return over_cells ? static_cast<int64_t>(kept_cells(s).cells.size()) : s.kernel_h * s.kernel_w;
}

at::Tensor kept_element_block(const at::Tensor& x, const ForwardShape& s) {
  const KeptCells kept = kept_cells(s);
  const KeptRun kept_rows = kept_run(kept.rows), kept_cols = kept_run(kept.cols);
  if (!cells_are_single_elements(s) || !kept_rows.one_run || !kept_cols.one_run) return at::Tensor();
  return x.narrow(2, kept_rows.first, kept_rows.count).narrow(3, kept_cols.first, kept_cols.count);
}

CroppedGemm cropped_gemm_operands(bool over_cells, const at::Tensor& cells, bool cells_kept_only,
                                  const at::Tensor& taps, const at::Tensor& weight, const ForwardShape& s,
                                  const at::Tensor& weight_rows_built) {
  if (!over_cells) {
    return {taps.reshape({s.batch, s.in_channels * s.kernel_h * s.kernel_w}),
            weight_rows_built.defined() ? weight_rows_built : tap_weight_rows(weight, s), s.kernel_h * s.kernel_w};
  }
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  const int64_t row_segments = rows.segments(), col_segments = cols.segments();
  const int64_t cell_count = row_segments * col_segments;
  const KeptCells kept = kept_cells(s);
  const int64_t kept_count = static_cast<int64_t>(kept.cells.size());
  // The kept cells are the kept row segments' by the kept column segments'. Where each of those is one run of
  // segments, `cells` [..., cell_count, ...] at dimension `dim` becomes its kept ones by two narrows (then a copy
  // where the caller reshapes); else by an index, which takes a copy from the host's pageable memory to the device
  // first (the host waits on it, and no CUDA graph can capture it).
  const KeptRun kept_rows = kept_run(kept.rows), kept_cols = kept_run(kept.cols);
  const auto select_kept = [&](const at::Tensor& t, int64_t dim) {
    if (kept_count == cell_count) return t;
    if (kept_rows.one_run && kept_cols.one_run) {
      std::vector<int64_t> sizes = t.sizes().vec();
      sizes[dim] = row_segments;
      sizes.insert(sizes.begin() + dim + 1, col_segments);
      std::vector<int64_t> kept_sizes = t.sizes().vec();
      kept_sizes[dim] = kept_count;
      return t.reshape(sizes)
          .narrow(dim, kept_rows.first, kept_rows.count)
          .narrow(dim + 1, kept_cols.first, kept_cols.count)
          .reshape(kept_sizes);
    }
    return t.index_select(dim, at::tensor(kept.cells, at::TensorOptions().dtype(at::kLong)).to(t.device()));
  };
  at::Tensor weight_rows = weight_rows_built;
  if (!weight_rows.defined()) {
    // Each cell's weight: the sum of the weights of the taps that keep it (spread_taps), over the weight laid out
    // [C_in, kH, kW, C_out] so that every pass reads and writes whole rows of C_out; then the kept cells'.
    const at::Tensor taps_last =
        tap_weight_rows(weight, s).view({s.in_channels, s.kernel_h, s.kernel_w, s.out_channels});
    weight_rows = select_kept(spread_taps(taps_last, s, /*tap_dim=*/1).view({s.in_channels, cell_count,
                                                                              s.out_channels}), 1);
  }
  const at::Tensor x_rows =
      cells_kept_only ? cells : select_kept(cells.reshape({s.batch, s.in_channels, cell_count}), 2);
  // Contiguous (CroppedGemm): the narrows above leave a view with gaps where a kept run is a single segment.
  return {x_rows.reshape({s.batch, s.in_channels * kept_count}).contiguous(),
          weight_rows.reshape({s.in_channels * kept_count, s.out_channels}).contiguous(), kept_count};
}

at::ScalarType accumulation_type(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor no_sums(const at::Tensor& x) {
  return at::empty({0}, x.options().dtype(accumulation_type(x.scalar_type())));
}

void check_sum_hw_args(const at::Tensor& x) {
  FUSEDLSE_CHECK(x.dim() == 4, "x must be 4-D [B, C_in, H, W], got ", x.dim(), "-D with shape ", x.sizes());
  check_float_dtype(x, "x");
}

ConvSettings check_conv_settings(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                 at::IntArrayRef dilation, int64_t groups) {
  const std::pair<const char*, at::IntArrayRef> lists[] = {
      {"stride", stride}, {"padding", padding}, {"output_padding", output_padding}, {"dilation", dilation}};
  for (const auto& [name, values] : lists) {
    FUSEDLSE_CHECK(values.size() == 2, name, " must be an int or a pair (height, width), got ", values);
  }
  ConvSettings c;
  for (int d = 0; d < 2; ++d) {
    c.stride[d] = stride[d];
    c.padding[d] = padding[d];
    c.output_padding[d] = output_padding[d];
    c.dilation[d] = dilation[d];
  }
  c.groups = groups;
  FUSEDLSE_CHECK(c.stride[0] >= 1 && c.stride[1] >= 1, "stride must be positive, got ", stride);
  FUSEDLSE_CHECK(c.dilation[0] >= 1 && c.dilation[1] >= 1, "dilation must be positive, got ", dilation);
  FUSEDLSE_CHECK(c.padding[0] >= 0 && c.padding[1] >= 0, "padding must be non-negative, got ", padding);
  FUSEDLSE_CHECK(groups >= 1, "groups must be positive, got ", groups);
  for (int d = 0; d < 2; ++d) {
    // nn.ConvTranspose2d's own rule: the extra rows must be fewer than the stride or the dilation.
    FUSEDLSE_CHECK(c.output_padding[d] >= 0 &&
                       (c.output_padding[d] < c.stride[d] || c.output_padding[d] < c.dilation[d]),
                "output_padding must be non-negative and smaller than either stride or dilation, got output_padding ",
                output_padding, ", stride ", stride, ", dilation ", dilation);
  }
  return c;
}

void check_x_and_weight(const at::Tensor& x, const at::Tensor& weight) {
  check_sum_hw_args(x);
  FUSEDLSE_CHECK(weight.dim() == 4, "weight must be 4-D [C_in, C_out, kH, kW] (nn.ConvTranspose2d layout), got ",
              weight.dim(), "-D with shape ", weight.sizes());
  FUSEDLSE_CHECK(x.size(1) >= 1 && x.size(2) >= 1 && x.size(3) >= 1,
              "x must have C_in, H and W of at least 1, got shape ", x.sizes());
  FUSEDLSE_CHECK(weight.size(0) == x.size(1), "weight.shape[0] must equal x's C_in = ", x.size(1),
              ", got weight of shape ", weight.sizes());
  FUSEDLSE_CHECK(weight.size(1) >= 1 && weight.size(2) >= 1 && weight.size(3) >= 1,
              "weight must have C_out, kH and kW of at least 1, got shape ", weight.sizes());
  check_same_device(x, "x", weight, "weight");
  check_float_dtype(weight, "weight");
  check_same_dtype(x, "x", weight, "weight");
}

ForwardShape check_shape_args(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
                              int64_t groups) {
  const ConvSettings conv = check_conv_settings(stride, padding, output_padding, dilation, groups);
  check_x_and_weight(x, weight);
  ForwardShape s;
  s.conv = conv;
  s.batch = x.size(0);
  s.in_channels = x.size(1);
  s.height = x.size(2);
  s.width = x.size(3);
  FUSEDLSE_CHECK(s.in_channels % conv.groups == 0, "x's C_in = ", s.in_channels, " must be divisible by groups = ",
                 conv.groups, " (weight is [C_in, C_out / groups, kH, kW] as in nn.ConvTranspose2d)");
  FUSEDLSE_CHECK(!__builtin_mul_overflow(weight.size(1), conv.groups, &s.out_channels), "C_out = weight.shape[1] ",
                 weight.size(1), " * groups ", conv.groups, " overflows int64");
  s.kernel_h = weight.size(2);
  s.kernel_w = weight.size(3);
  set_output_size(s);
  return s;
}

ForwardShape check_forward_args(const at::Tensor& x, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                at::IntArrayRef dilation, int64_t groups) {
  const ForwardShape s = check_shape_args(x, weight, stride, padding, output_padding, dilation, groups);
  check_bias_shape(bias, s.out_channels);
  if (conv_bias.has_value()) {
    FUSEDLSE_CHECK(conv_bias->dim() == 1 && conv_bias->size(0) == s.out_channels,
                "conv_bias must have shape [C_out] = [", s.out_channels, "], got ", conv_bias->sizes());
  }
  check_same_device(x, "x", bias, "bias");
  if (conv_bias.has_value()) check_same_device(x, "x", *conv_bias, "conv_bias");
  check_float_dtype(bias, "bias");
  check_same_dtype(x, "x", bias, "bias");
  if (conv_bias.has_value()) {
    check_float_dtype(*conv_bias, "conv_bias");
    check_same_dtype(x, "x", *conv_bias, "conv_bias");
  }
  return s;
}

void set_output_size(ForwardShape& s) {
  // nn.ConvTranspose2d's output size and its area: checked, since huge strides or dilations would wrap int64 (and
  // the mean's scale with it).
  const ConvSettings& conv = s.conv;
  s.full_height =
      output_extent(s.height, conv.stride[0], conv.dilation[0], s.kernel_h, conv.output_padding[0], "H_out");
  s.full_width = output_extent(s.width, conv.stride[1], conv.dilation[1], s.kernel_w, conv.output_padding[1], "W_out");
  const int64_t full[2] = {s.full_height, s.full_width};
  for (int d = 0; d < 2; ++d) {
    // Compared as full / 2 so that 2 * padding cannot overflow.
    FUSEDLSE_CHECK(conv.padding[d] <= (full[d] - 1) / 2, "padding ", at::IntArrayRef(conv.padding, 2),
                   " crops the whole output: ", d == 0 ? "H_out" : "W_out", " = ", full[d], " - 2 * ",
                   conv.padding[d], " must be at least 1 (nn.ConvTranspose2d refuses it too, but grouped on the "
                   "CPU, where it returns an empty output whose mean is NaN)");
  }
  s.out_height = s.full_height - 2 * conv.padding[0];
  s.out_width = s.full_width - 2 * conv.padding[1];
  int64_t area = 0;
  FUSEDLSE_CHECK(!__builtin_mul_overflow(s.out_height, s.out_width, &area), "the output's H_out * W_out = ",
                 s.out_height, " * ", s.out_width, " overflows int64; use a smaller stride or dilation");
  s.scale = 1.0 / static_cast<double>(area);
}

void check_gemm_lse_args(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias) {
  FUSEDLSE_CHECK(sums.dim() == 2, "sums must be 2-D [B, C_in], got shape ", sums.sizes());
  FUSEDLSE_CHECK(weight_sum.dim() == 2, "weight_sum must be 2-D [C_in, C_out], got shape ", weight_sum.sizes());
  FUSEDLSE_CHECK(weight_sum.size(0) == sums.size(1), "weight_sum.shape[0] must equal sums.shape[1] = ", sums.size(1),
              ", got weight_sum of shape ", weight_sum.sizes());
  FUSEDLSE_CHECK(weight_sum.size(1) >= 1, "weight_sum must have C_out of at least 1, got shape ", weight_sum.sizes());
  FUSEDLSE_CHECK(total_bias.numel() == weight_sum.size(1), "total_bias must hold C_out = ", weight_sum.size(1),
              " elements, got shape ", total_bias.sizes());
  FUSEDLSE_CHECK(sums.scalar_type() == at::kFloat || sums.scalar_type() == at::kDouble,
              "sums must be float32 or float64 (what sum_hw returns), got ", sums.scalar_type());
  check_same_dtype(sums, "sums", weight_sum, "weight_sum");
  check_same_dtype(sums, "sums", total_bias, "total_bias");
  check_same_device(sums, "sums", weight_sum, "weight_sum");
  check_same_device(sums, "sums", total_bias, "total_bias");
}

at::Tensor empty_broadcast_hw(const at::Tensor& rows, int64_t height, int64_t width, at::ScalarType dtype,
                              bool channels_last) {
  FUSEDLSE_CHECK(is_supported_float(dtype), "dtype must be float16, bfloat16, float32 or float64, got ", dtype);
  FUSEDLSE_CHECK(rows.dim() == 2, "rows must be 2-D [B, C], got shape ", rows.sizes());
  FUSEDLSE_CHECK(rows.scalar_type() == accumulation_type(dtype), "rows must have dtype ", accumulation_type(dtype),
              " (the accumulation type of ", dtype, "), got ", rows.scalar_type());
  FUSEDLSE_CHECK(height >= 0 && width >= 0, "height and width must be non-negative, got ", height, " and ", width);
  return at::empty({rows.size(0), rows.size(1), height, width},
                   rows.options().dtype(dtype).memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                           : at::MemoryFormat::Contiguous));
}

TORCH_LIBRARY(fusedlse, m) {
  // forward returns (out [B, 1] in x's dtype, sums [B, C_in] = sum_HW(x) in the accumulation type; with padding > 0
  // the per-tap sums [B, C_in, kH, kW]); the sums are what the backward needs, kept so that it does not read x
  // again. keep_sums=False (no backward will run: ops.forward passes it where nothing needs a gradient) returns an
  // empty [0] tensor for them (no_sums), and the padding forward then writes no per-tap sums where its GEMM does not
  // run over them: up to 9 values a plane where x's planes are one element (docs/limits.md §59).
  m.def("forward(Tensor x, Tensor weight, Tensor? conv_bias, Tensor bias, int[2] stride=1, int[2] padding=0, "
        "int[2] output_padding=0, int[2] dilation=1, int groups=1, bool keep_sums=True) -> (Tensor, Tensor)");
  m.def("sum_hw(Tensor x) -> Tensor");
  // padding > 0: per (b, c) plane and kernel tap, the sum of x over the inputs whose product with the tap survives
  // the crop ([B, C, kH, kW], accumulation type), and its adjoint, the backward's write of grad_x.
  m.def("tap_sums(Tensor x, int[2] kernel_size, int[2] stride=1, int[2] padding=0, int[2] output_padding=0, "
        "int[2] dilation=1) -> Tensor");
  m.def("broadcast_taps(Tensor taps, SymInt height, SymInt width, ScalarType dtype, int[2] stride=1, "
        "int[2] padding=0, int[2] output_padding=0, int[2] dilation=1, bool channels_last=False) -> Tensor");
  m.def("gemm_lse(Tensor sums, Tensor weight_sum, Tensor total_bias, float scale) -> Tensor");
  // The backward's write of grad_x: rows [B, C] repeated over every (h, w), in dtype and the given layout.
  m.def("broadcast_hw(Tensor rows, SymInt height, SymInt width, ScalarType dtype, bool channels_last=False) -> Tensor");
  // Validation and shape inference alone, one kernel for every device (no tensor is read): the Triton rival
  // (triton_ref/tuned.py) checks its arguments here and takes H_out * W_out from it.
  m.def("check_forward(Tensor x, Tensor weight, Tensor? conv_bias, Tensor bias, int[2] stride=1, int[2] padding=0, "
        "int[2] output_padding=0, int[2] dilation=1, int groups=1) -> int",
        [](const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
           const at::Tensor& bias, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
           at::IntArrayRef dilation, int64_t groups) {
          const ForwardShape s =
              check_forward_args(x, weight, conv_bias, bias, stride, padding, output_padding, dilation, groups);
          return s.out_height * s.out_width;
        });
  // The plan the CUDA forward would run for x, weight and the settings, as JSON (fusedlse_cuda.explain); CPU tensors:
  // the CPU path.
  m.def("explain(Tensor x, Tensor weight, int[2] stride=1, int[2] padding=0, int[2] output_padding=0, "
        "int[2] dilation=1, int groups=1) -> str");
  // The planner alone, for made-up devices (tests/test_plan.py): problem = [B, C_in, C_out, H, W, element bytes,
  // layout (plan::Layout), kH * kW, plane runs (0 or 1), planes aligned (0 or 1), pixels follow (0 or 1), pixel
  // vectors (0 or 1)], device = [SMs, L2 bytes, shared bytes per SM, warps per SM, GB/s, float32 GFLOP/s, bfloat16
  // tensor-core GFLOP/s (0: none known)].
  m.def("plan(int[] problem, float[] device) -> str", [](at::IntArrayRef problem, c10::ArrayRef<double> device) {
    FUSEDLSE_CHECK(problem.size() == 12, "plan: problem must have 12 values [B, C_in, C_out, H, W, element bytes, "
                   "layout, kernel area, plane runs, planes aligned, pixels follow, pixel vectors], got ",
                   static_cast<int64_t>(problem.size()));
    FUSEDLSE_CHECK(device.size() == 7, "plan: device must have 7 values, got ", static_cast<int64_t>(device.size()));
    FUSEDLSE_CHECK(problem[6] >= 0 && problem[6] <= 3, "plan: layout must be 0..3, got ", problem[6]);
    FUSEDLSE_CHECK(problem[8] == 0 || problem[8] == 1, "plan: plane runs must be 0 or 1, got ", problem[8]);
    FUSEDLSE_CHECK(problem[9] == 0 || problem[9] == 1, "plan: planes aligned must be 0 or 1, got ", problem[9]);
    FUSEDLSE_CHECK(problem[10] == 0 || problem[10] == 1, "plan: pixels follow must be 0 or 1, got ", problem[10]);
    FUSEDLSE_CHECK(problem[11] == 0 || problem[11] == 1, "plan: pixel vectors must be 0 or 1, got ", problem[11]);
    const plan::Problem p{problem[0], problem[1], problem[2], problem[3], problem[4], problem[5],
                          static_cast<plan::Layout>(problem[6]), problem[7], problem[8] == 1, problem[9] == 1,
                          problem[10] == 1, problem[11] == 1};
    const plan::DeviceProps d{static_cast<int64_t>(device[0]), static_cast<int64_t>(device[1]),
                              static_cast<int64_t>(device[2]), static_cast<int64_t>(device[3]), device[4], device[5],
                              device[6]};
    return plan::to_json(plan::choose(p, d), p, d);
  });
  // The planner's cut of padding's tap reader units into runs of rows (plan::tap_run_chunks), for made-up units and
  // devices (tests/test_plan.py).
  m.def("_tap_run_chunks(int height, int row_bytes, int units, int resident_warps) -> int",
        [](int64_t height, int64_t row_bytes, int64_t units, int64_t resident_warps) {
          FUSEDLSE_CHECK(height >= 1 && row_bytes >= 1 && units >= 1 && resident_warps >= 1,
                         "_tap_run_chunks: height, row_bytes, units and resident_warps must each be 1 or more, got ",
                         height, ", ", row_bytes, ", ", units, ", ", resident_warps);
          return plan::tap_run_chunks(height, row_bytes, units, resident_warps);
        });
  // For measurements only (bench/strategies.py): every later CUDA forward runs this strategy (plan::Strategy) and,
  // for the split one, this reader (plan::Reader) and epilogue (plan::Epilogue); -1 leaves that to the planner.
  m.def("_force_plan(int strategy, int reader, int epilogue=-1) -> ()",
        [](int64_t strategy, int64_t reader, int64_t epilogue) {
          FUSEDLSE_CHECK(strategy >= -1 && strategy <= 1, "_force_plan: strategy must be -1, 0 or 1, got ", strategy);
          FUSEDLSE_CHECK(reader >= -1 && reader <= 5, "_force_plan: reader must be -1..5, got ", reader);
          constexpr int kLastEpilogue = static_cast<int>(plan::Epilogue::kGemvLse);
          FUSEDLSE_CHECK(epilogue >= -1 && epilogue <= kLastEpilogue, "_force_plan: epilogue must be -1..",
                         kLastEpilogue, ", got ", epilogue);
          plan::force(static_cast<int>(strategy), static_cast<int>(reader), static_cast<int>(epilogue));
        });
  // For measurements and tests only (bench/experiments/run_walks.py, tests/test_strategies.py): every later CUDA
  // read of tiny planes that follow each other takes this walk (plan::TinyPlaneWalk); -1 leaves it to the planner.
  m.def("_force_walk(int walk) -> ()", [](int64_t walk) {
    constexpr int kLastWalk = static_cast<int>(plan::TinyPlaneWalk::kStaged);
    FUSEDLSE_CHECK(walk >= -1 && walk <= kLastWalk, "_force_walk: walk must be -1..", kLastWalk, ", got ", walk);
    plan::force_walk(static_cast<int>(walk));
  });
  // For measurements and tests only (tests/test_padding_groups.py): every later channels walk of the tap kernels cuts
  // C into this many slices (plan::channel_walk_slices, clamped); 0 leaves it to the rule.
  m.def("_force_channel_slices(int slices) -> ()", [](int64_t slices) {
    FUSEDLSE_CHECK(slices >= 0, "_force_channel_slices: slices must be 0 or more, got ", slices);
    plan::force_channel_slices(slices);
  });
  // For measurements and tests only (tests/test_padding_groups.py): every later cut of the tap reader's planes into
  // runs takes runs of at least this many bytes (plan::tap_run_chunks; 0 none), -1 leaves it to the rule.
  m.def("_force_tap_min_run_bytes(int bytes) -> ()", [](int64_t bytes) {
    FUSEDLSE_CHECK(bytes >= -1, "_force_tap_min_run_bytes: bytes must be -1 or more, got ", bytes);
    plan::force_tap_min_run_bytes(bytes);
  });
  // padding's rule for the tap kernels' shares (plan::tap_shares_short), for the planner's CPU tests.
  m.def("_tap_shares_short(int planes, int c_out, int taps, int acc_bytes, int multiprocessors) -> bool",
        [](int64_t planes, int64_t c_out, int64_t taps, int64_t acc_bytes, int64_t multiprocessors) {
          FUSEDLSE_CHECK(planes >= 1 && c_out >= 1 && taps >= 1 && (acc_bytes == 4 || acc_bytes == 8) &&
                             multiprocessors >= 1,
                         "_tap_shares_short: planes, c_out, taps and multiprocessors must each be 1 or more and "
                         "acc_bytes 4 or 8, got ", planes, ", ", c_out, ", ", taps, ", ", acc_bytes, ", ",
                         multiprocessors);
          return plan::tap_shares_short(planes, c_out, taps, acc_bytes, multiprocessors);
        });
  // Where padding's forward over taps makes its GEMM's weight (plan::tap_weight_way, its place in TapWeightWay), for
  // the planner's CPU tests.
  m.def("_tap_weight_way(bool reader_beside, int x_bytes, int weight_bytes) -> int",
        [](bool reader_beside, int64_t x_bytes, int64_t weight_bytes) -> int64_t {
          FUSEDLSE_CHECK(x_bytes >= 0 && weight_bytes >= 0,
                         "_tap_weight_way: x_bytes and weight_bytes must each be 0 or more, got ", x_bytes, ", ",
                         weight_bytes);
          return static_cast<int64_t>(plan::tap_weight_way(reader_beside, x_bytes, weight_bytes));
        });
  // padding's lanes a plane in the combine without shares (plan::tap_combine_lanes), for the planner's CPU tests.
  m.def("_tap_combine_lanes(int planes, int multiprocessors, int warps_per_sm) -> int",
        [](int64_t planes, int64_t multiprocessors, int64_t warps_per_sm) -> int64_t {
          FUSEDLSE_CHECK(planes >= 1 && multiprocessors >= 1 && warps_per_sm >= 1,
                         "_tap_combine_lanes: planes, multiprocessors and warps_per_sm must each be 1 or more, got ",
                         planes, ", ", multiprocessors, ", ", warps_per_sm);
          return plan::tap_combine_lanes(planes, multiprocessors, warps_per_sm);
        });
  // For measurements and tests only (tests/test_padding_groups.py): every later padded forward's combine without
  // shares takes `lanes` lanes a plane (32: a warp a plane, tap_combine_kernel; fewer: tap_group_combine_kernel, raised
  // to cover a plane's runs), bypassing plan::tap_combine_lanes's rule; -1 leaves it to the rule.
  m.def("_force_tap_combine_lanes(int lanes) -> ()", [](int64_t lanes) {
    FUSEDLSE_CHECK(lanes == -1 || (lanes >= 1 && lanes <= 32 && (lanes & (lanes - 1)) == 0),
                   "_force_tap_combine_lanes: lanes must be -1 or a power of two from 1 to 32, got ", lanes);
    plan::force_tap_combine_lanes(static_cast<int>(lanes));
  });
  // padding's rule for the channels walk row by row (plan::channel_walk_by_rows), for the planner's CPU tests.
  m.def("_channel_walk_by_rows(int channels, int width, int element_bytes) -> bool",
        [](int64_t channels, int64_t width, int64_t element_bytes) {
          FUSEDLSE_CHECK(channels >= 1 && width >= 1 && (element_bytes == 2 || element_bytes == 4 ||
                                                         element_bytes == 8),
                         "_channel_walk_by_rows: channels and width must each be 1 or more and element_bytes 2, 4 "
                         "or 8, got ", channels, ", ", width, ", ", element_bytes);
          return plan::channel_walk_by_rows(channels, width, element_bytes);
        });
  // padding's rule for the rows walk's stage (plan::tap_rows_staged), for the planner's CPU tests.
  m.def("_tap_rows_staged(bool whole_vector_rows, int width, int element_bytes) -> bool",
        [](bool whole_vector_rows, int64_t width, int64_t element_bytes) {
          FUSEDLSE_CHECK(width >= 1 && element_bytes >= 1, "_tap_rows_staged: width and element_bytes must each be 1 "
                         "or more, got ", width, ", ", element_bytes);
          return plan::tap_rows_staged(whole_vector_rows, width, element_bytes);
        });
  // For measurements and tests only (tests/test_padding_groups.py): every later padded forward's rows walk stages
  // rows of more than one element wherever a row fits the stage (1) or never (0), bypassing plan::tap_rows_staged's
  // rule; -1 leaves it to the rule.
  m.def("_force_tap_stage(int stage) -> ()", [](int64_t stage) {
    FUSEDLSE_CHECK(stage >= -1 && stage <= 1, "_force_tap_stage: stage must be -1, 0 or 1, got ", stage);
    plan::force_tap_stage(static_cast<int>(stage));
  });
  // padding's rule for the staged walk's span sums (plan::tap_staged_span_sums), for the planner's CPU tests.
  m.def("_tap_staged_span_sums(int width, int head, int tail) -> bool",
        [](int64_t width, int64_t head, int64_t tail) {
          FUSEDLSE_CHECK(width >= 1 && head >= 0 && tail >= 0, "_tap_staged_span_sums: width must be 1 or more and "
                         "head and tail 0 or more, got ", width, ", ", head, ", ", tail);
          return plan::tap_staged_span_sums(width, head, tail);
        });
  // padding's rule for summing the rows walk's middle rows whole (plan::tap_middle_by_span), for the planner's CPU
  // tests.
  m.def("_tap_middle_by_span(bool whole_vector_rows, int width, int element_bytes, int head, int tail) -> bool",
        [](bool whole_vector_rows, int64_t width, int64_t element_bytes, int64_t head, int64_t tail) {
          FUSEDLSE_CHECK(width >= 1 && element_bytes >= 1 && head >= 0 && tail >= 0, "_tap_middle_by_span: width "
                         "and element_bytes must each be 1 or more and head and tail 0 or more, got ", width, ", ",
                         element_bytes, ", ", head, ", ", tail);
          return plan::tap_middle_by_span(whole_vector_rows, width, element_bytes, head, tail);
        });
  // For measurements and tests only (tests/test_padding_groups.py): every later padded forward's rows walk sums the
  // middle rows whole wherever their rows follow each other with no gap, a middle column is left and the borders are
  // at most 2 columns a side, and its staged walk takes their span sums wherever a middle column is left (1), or
  // neither ever (0), bypassing plan::tap_middle_by_span's and plan::tap_staged_span_sums' rules; -1 leaves them to
  // the rules.
  m.def("_force_tap_middle_by_span(int by_span) -> ()", [](int64_t by_span) {
    FUSEDLSE_CHECK(by_span >= -1 && by_span <= 1, "_force_tap_middle_by_span: by_span must be -1, 0 or 1, got ",
                   by_span);
    plan::force_tap_middle_by_span(static_cast<int>(by_span));
  });
  // The plane-lanes reader's launch (plan::plane_lanes_tiling, then plan::fit_pieces_to_wave where kernel_blocks, the
  // blocks its kernel holds at once, is given), for the planner's CPU tests: lanes, pieces, piece units, blocks,
  // pieces_in_block (0 or 1) and persistent (0 or 1).
  m.def("_plane_lanes_tiling(int planes, int units, int resident_threads, int units_per_lane, int kernel_blocks=0) -> "
        "int[]",
        [](int64_t planes, int64_t units, int64_t resident_threads, int64_t units_per_lane, int64_t kernel_blocks) {
          FUSEDLSE_CHECK(planes >= 1 && units >= 1 && resident_threads >= 1 && units_per_lane >= 1,
                         "_plane_lanes_tiling: planes, units, resident_threads and units_per_lane must each be 1 or "
                         "more, got ", planes, ", ", units, ", ", resident_threads, ", ", units_per_lane);
          FUSEDLSE_CHECK(kernel_blocks >= 0, "_plane_lanes_tiling: kernel_blocks must be 0 (not given) or more, got ",
                         kernel_blocks);
          plan::PlaneLanesTiling t = plan::plane_lanes_tiling(planes, units, resident_threads, units_per_lane);
          if (kernel_blocks > 0) t = plan::fit_pieces_to_wave(t, planes, units, kernel_blocks);
          return std::vector<int64_t>{t.lanes, t.pieces, t.piece_units, t.blocks, t.pieces_in_block, t.persistent};
        });
  // For measurements and tests only (tests/test_strategies.py): every later plane-lanes launch takes a persistent
  // grid of the resident blocks (1) or a block a turn (0), bypassing plan::plane_lanes_tiling's rule; -1 leaves it
  // to the rule.
  m.def("_force_plane_lanes_persistent(int persistent) -> ()", [](int64_t persistent) {
    FUSEDLSE_CHECK(persistent >= -1 && persistent <= 1,
                   "_force_plane_lanes_persistent: persistent must be -1, 0 or 1, got ", persistent);
    plan::force_plane_lanes_persistent(static_cast<int>(persistent));
  });
  // For measurements and tests only (tests/test_strategies.py): every later plane-lanes launch cuts each plane into
  // this many pieces (plan::force_plane_lanes_pieces); 0 leaves it to the rule.
  m.def("_force_plane_lanes_pieces(int pieces) -> ()", [](int64_t pieces) {
    FUSEDLSE_CHECK(pieces >= 0, "_force_plane_lanes_pieces: pieces must be 0 or more, got ", pieces);
    plan::force_plane_lanes_pieces(pieces);
  });
  // For measurements and tests only (tests/test_padding_groups.py): every later padded forward takes the tap kernels'
  // shares wherever their bytes allow (1) or never (0), bypassing plan::tap_shares_short; -1 leaves it to the rule.
  m.def("_force_tap_shares(int shares) -> ()", [](int64_t shares) {
    FUSEDLSE_CHECK(shares >= -1 && shares <= 1, "_force_tap_shares: shares must be -1, 0 or 1, got ", shares);
    plan::force_tap_shares(static_cast<int>(shares));
  });
  // For measurements and tests only (tests/test_padding_groups.py, bench/padding_groups.py): every later padded CUDA
  // forward runs its GEMM over x's elements wherever x's layout and settings allow it (1) or never (0), bypassing the
  // rule's bounds on sizes and times; -1 leaves it to the rule.
  m.def("_force_element_gemm(int elements) -> ()", [](int64_t elements) {
    FUSEDLSE_CHECK(elements >= -1 && elements <= 1, "_force_element_gemm: elements must be -1, 0 or 1, got ",
                   elements);
    plan::force_element_gemm(static_cast<int>(elements));
  });
  // For measurements and tests only (tests/test_padding_groups.py, bench/experiments): every later padded CUDA forward
  // whose GEMM runs over taps makes its weight this way (plan::TapWeightWay); -1 leaves it to the rule.
  m.def("_force_tap_weight_way(int way) -> ()", [](int64_t way) {
    constexpr int kLastWay = static_cast<int>(plan::TapWeightWay::kCopy);
    FUSEDLSE_CHECK(way >= -1 && way <= kLastWay, "_force_tap_weight_way: way must be -1..", kLastWay, ", got ", way);
    plan::force_tap_weight_way(static_cast<int>(way));
  });
  // For measurements and tests only (tests/test_padding_groups.py, bench/experiments): every later padded CUDA forward
  // of 16-bit x takes its tap sums by one GEMM over a 0/1 keep matrix wherever x's layout and the kernel allow it (1)
  // or never (0), bypassing the rule's bounds on plane sizes and counts; -1 leaves it to the rule.
  m.def("_force_keep_gemm(int keep) -> ()", [](int64_t keep) {
    FUSEDLSE_CHECK(keep >= -1 && keep <= 1, "_force_keep_gemm: keep must be -1, 0 or 1, got ", keep);
    plan::force_keep_gemm(static_cast<int>(keep));
  });
  // No tensors, one kernel for every device: lets ModelNew reject unsupported settings when it is built.
  m.def("check_conv_settings(int[2] stride=1, int[2] padding=0, int[2] output_padding=0, int[2] dilation=1, "
        "int groups=1) -> ()",
        [](at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
           int64_t groups) { check_conv_settings(stride, padding, output_padding, dilation, groups); });
}

ForwardShape tap_shape(at::IntArrayRef planes, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation) {
  ForwardShape s{};
  s.conv = check_conv_settings(stride, padding, output_padding, dilation, 1);
  FUSEDLSE_CHECK(kernel_size.size() == 2 && kernel_size[0] >= 1 && kernel_size[1] >= 1,
                 "kernel_size must be a pair of positive ints (kH, kW), got ", kernel_size);
  FUSEDLSE_CHECK(planes[2] >= 1 && planes[3] >= 1, "H and W must be at least 1, got [B, C, H, W] = ", planes);
  s.batch = planes[0];
  s.in_channels = planes[1];
  s.height = planes[2];
  s.width = planes[3];
  s.kernel_h = kernel_size[0];
  s.kernel_w = kernel_size[1];
  set_output_size(s);
  return s;
}

ForwardShape check_tap_sums_args(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation) {
  check_sum_hw_args(x);
  return tap_shape(x.sizes(), kernel_size, stride, padding, output_padding, dilation);
}

at::Tensor empty_broadcast_taps(const at::Tensor& taps, const ForwardShape& s, at::ScalarType dtype,
                                bool channels_last) {
  return at::empty({s.batch, s.in_channels, s.height, s.width},
                   taps.options().dtype(dtype).memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                           : at::MemoryFormat::Contiguous));
}

ForwardShape check_broadcast_taps_args(const at::Tensor& taps, int64_t height, int64_t width, at::ScalarType dtype,
                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef output_padding, at::IntArrayRef dilation) {
  FUSEDLSE_CHECK(is_supported_float(dtype), "dtype must be float16, bfloat16, float32 or float64, got ", dtype);
  FUSEDLSE_CHECK(taps.dim() == 4, "taps must be 4-D [B, C, kH, kW], got shape ", taps.sizes());
  FUSEDLSE_CHECK(taps.scalar_type() == accumulation_type(dtype), "taps must have dtype ", accumulation_type(dtype),
                 " (the accumulation type of ", dtype, "), got ", taps.scalar_type());
  const int64_t planes[4] = {taps.size(0), taps.size(1), height, width};
  return tap_shape(planes, taps.sizes().slice(2), stride, padding, output_padding, dilation);
}

namespace {

at::Tensor tap_sums_op(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation) {
  const ForwardShape s = check_tap_sums_args(x, kernel_size, stride, padding, output_padding, dilation);
  const NoAutocast no_autocast;
  return tap_sums(x, s);
}

at::Tensor broadcast_taps_op(const at::Tensor& taps, int64_t height, int64_t width, at::ScalarType dtype,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                             at::IntArrayRef dilation, bool channels_last) {
  const ForwardShape s = check_broadcast_taps_args(taps, height, width, dtype, stride, padding, output_padding,
                                                   dilation);
  const NoAutocast no_autocast;
  at::Tensor out = empty_broadcast_taps(taps, s, dtype, channels_last);
  if (out.numel() > 0) broadcast_taps(taps, s, out);
  return out;
}

}  // namespace

// CUDA's are in cuda/ops_cuda.cpp (the tap kernels, this code for what they do not take).
TORCH_LIBRARY_IMPL(fusedlse, CPU, m) {
  m.impl("tap_sums", &tap_sums_op);
  m.impl("broadcast_taps", &broadcast_taps_op);
}

}  // namespace fusedlse
