// What every backend shares: argument validation and shape inference, defined once in fusedlse.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Optional.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace fusedlse {

// Error messages are assembled with std::string, never iostreams: on the H100 machine's toolchain the iostream
// code that TORCH_CHECK's formatting instantiates inside this module segfaulted while building the message.
// FUSEDLSE_CHECK(cond, parts...) takes strings, integers, shapes, dtypes and devices.
namespace detail {
inline void append(std::string& s, const char* part) { s += part; }
inline void append(std::string& s, const std::string& part) { s += part; }
inline void append(std::string& s, int64_t part) { s += std::to_string(part); }
inline void append(std::string& s, int part) { s += std::to_string(part); }
inline void append(std::string& s, at::ScalarType part) { s += c10::toString(part); }
inline void append(std::string& s, const c10::Device& part) { s += part.str(); }
inline void append(std::string& s, at::IntArrayRef part) {
  s += "[";
  for (size_t i = 0; i < part.size(); ++i) s += (i ? ", " : "") + std::to_string(part[i]);
  s += "]";
}
}  // namespace detail

template <typename... Parts>
std::string message(const Parts&... parts) {
  std::string s;
  (detail::append(s, parts), ...);
  return s;
}

#define FUSEDLSE_CHECK(cond, ...) TORCH_CHECK(cond, ::fusedlse::message(__VA_ARGS__))

// nn.ConvTranspose2d's settings, each (height, width). Without padding every product of an input pixel and a
// kernel tap lands inside the output, so sum_HW(convT(x)) = sum_HW(x) @ W.sum((2,3)) + H_out*W_out*conv_bias and
// only H_out, W_out depend on stride, output_padding and dilation. Padding crops the output's border: each tap
// (t_h, t_w) then keeps the products of a rectangle of x (tap_sums). Groups make the GEMM block-diagonal
// (ungrouped_weight: the CPU backend multiplies its diagonal blocks group by group; CUDA's padding-0 kernels sum the
// grouped weight in place, and they and its planned cropped GEMM run the dense GEMM, whose zeros times an infinite x
// give NaN; the tap kernels' shares do not: docs/limits.md §78-79).
struct ConvSettings {
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t output_padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
  bool crops() const { return padding[0] > 0 || padding[1] > 0; }
};

// Reads the schema's int[2] lists; raises a c10::Error naming the setting when nn.ConvTranspose2d would reject it.
ConvSettings check_conv_settings(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                 at::IntArrayRef dilation, int64_t groups);

// The sizes of one forward call, after validation.
struct ForwardShape {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;  // out_channels: all groups' (weight.size(1) * groups)
  int64_t full_height, full_width;  // of the transposed convolution before padding crops it
  int64_t out_height, out_width;    // of the transposed convolution
  double scale;  // 1 / (H_out * W_out): turns the summed products into the mean of the convolution
  ConvSettings conv;
};

// Checks x [B, C_in, H, W] and weight [C_in, C_out, kH, kW] as check_forward_args does (ranks, sizes, floating
// dtypes that agree, one device): explain's arguments, the plan of a call forward would refuse being no plan.
void check_x_and_weight(const at::Tensor& x, const at::Tensor& weight);

// Checks x and weight (check_x_and_weight), the settings (check_conv_settings), groups against C_in, and the output
// size (set_output_size): everything check_forward_args checks but the biases (explain's arguments).
ForwardShape check_shape_args(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
                              int64_t groups);

// Checks x [B, C_in, H, W], weight [C_in, C_out, kH, kW], conv_bias [C_out] or None, bias of one value per output
// channel as the model broadcasts it ([C_out, 1, 1], [1, C_out, 1, 1] or a single value): ranks, sizes, floating
// dtypes that agree, one device; the convolution settings (check_conv_settings); and an output size (and area)
// that fits int64. Raises a c10::Error naming the argument otherwise.
ForwardShape check_forward_args(const at::Tensor& x, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                at::IntArrayRef dilation, int64_t groups);

// fusedlse::forward's second output where keep_sums is false (no backward will run): an empty [0] tensor of x's
// accumulation type on x's device, so that no backend writes the sums only a backward would read.
at::Tensor no_sums(const at::Tensor& x);

// Sets s's full_*, out_* and scale from its height, width, kernel and conv; raises a c10::Error where the output
// would be empty or its size overflow int64.
void set_output_size(ForwardShape& s);

// x [B, C, H, W] of a floating dtype.
void check_sum_hw_args(const at::Tensor& x);

// sums [B, C_in], weight_sum [C_in, C_out], total_bias (C_out elements): float32 or float64, all alike.
void check_gemm_lse_args(const at::Tensor& sums, const at::Tensor& weight_sum, const at::Tensor& total_bias);

// weight [C_in, C_out / groups, kH, kW] (nn.ConvTranspose2d's grouped layout) as the [C_in, C_out, kH, kW] weight of
// one ungrouped convolution: zero where an input channel's group does not reach an output channel. The weight
// itself when groups is 1.
at::Tensor ungrouped_weight(const at::Tensor& weight, int64_t groups);

// The inputs [first, end) along one dimension whose products with one kernel tap survive the crop.
struct KeptInputs {
  int64_t first, end;
};

// One dimension of x (0: rows, 1: columns) cut so that every tap keeps whole pieces: the first `head` inputs one by
// one, the `middle` (every tap keeps it) in one piece, the last `tail` one by one. Segments are numbered in that
// order; the middle has one number when there is one.
struct Cut {
  std::vector<KeptInputs> kept;  // per tap
  int64_t head = 0, middle = 0, tail = 0;
  int64_t segments() const { return head + (middle > 0 ? 1 : 0) + tail; }
  int64_t segment(int64_t i) const;  // the segment of input i
  std::pair<int64_t, int64_t> kept_segments(int64_t tap) const;  // [first, end) segments the tap keeps
  // The pieces of a dimension of `in` inputs, in order: the head, the middle and the tail, those not empty.
  struct Piece {
    int64_t start, length;
    bool middle;
  };
  std::vector<Piece> pieces(int64_t in) const;
};
Cut cut_of(const ForwardShape& s, int dim);
// cut_of's cut with every input a segment of its own: its cells are x's elements (the cropped GEMM over x's elements).
Cut element_cut(const ForwardShape& s, int dim);
// A cut of the kernel's taps along `dim` (0: kH, 1: kW) rather than x's inputs: tap t keeps segment t alone, so its
// cells are the taps and each cell's weight (a backend's cell weight over these cuts) is its tap's own, as
// tap_weight_rows lays it out.
Cut tap_cut(const ForwardShape& s, int dim);

// For padding > 0 (s.conv.crops()): per (b, c_in) plane, the sum of x over each cell, a pair (row segment, column
// segment) of the cuts: [B, C_in, row segments, column segments] in the accumulation type. One read of x; none where
// the cells are x's elements (cells_are_elements) and x holds the accumulation type (x itself, then).
at::Tensor cell_sums(const at::Tensor& x, const ForwardShape& s);

// cell_sums of CPU x [B, C, H, W] whose rows are contiguous, by a loop over planes (csrc/cpu): one pass over x,
// vectorized along W, each cell's total in float64, 16-bit x widened in the loop. There ATen's reductions over the
// segments' views cost more than the read (a sum of a few rows or columns a plane), and 16-bit x was converted to
// float32 first (docs/limits.md §87-88). plane_loop_apply: whether x is such x (CPU, rows contiguous, as many planes
// as threads at least; float32 and float64 planes of at most 8192 elements, 16-bit ones of any size); also
// plane_sums' path for 16-bit x.
bool plane_loop_apply(const at::Tensor& x);
at::Tensor cell_sums_of_planes(const at::Tensor& x, const Cut& rows, const Cut& cols);
// tap_sums of such x in the same loop, each plane's taps from its cells' float64 totals: no cells tensor written and
// read again ([268819, 6, 4, 43] float16 at padding 2, the cells 129 MB against x's 555; docs/limits.md §90).
at::Tensor tap_sums_of_planes(const at::Tensor& x, const Cut& rows, const Cut& cols);

// cell_sums of CPU x whose channels are contiguous (channels-last and its slices) by a loop over pixels (csrc/cpu),
// vectorized along C, each cell's total in float64, 16-bit x widened in the loop (docs/limits.md §88).
// channel_loop_apply: CPU x, stride 1 along C, 64 channels or more, two tasks of (batch, 256 channels) at least.
bool channel_loop_apply(const at::Tensor& x);
at::Tensor cell_sums_of_channels(const at::Tensor& x, const Cut& rows, const Cut& cols);

// tap_sums_of_cells of contiguous CPU cells (float32 or float64) by a loop over planes (csrc/cpu): ATen's sums over
// a few segments of each plane cost more than the cells' read (docs/limits.md §87).
at::Tensor tap_sums_of_cpu_cells(const at::Tensor& cells, const Cut& rows, const Cut& cols);

// Per (b, c_in) plane and tap (t_h, t_w), the sum of the cells [B, C_in, row segments, column segments] the tap
// keeps: [B, C_in, kH, kW]; taps that keep nothing get 0.
at::Tensor tap_sums_of_cells(const at::Tensor& cells, const ForwardShape& s);

// For padding > 0 (s.conv.crops()): per (b, c_in) plane and tap (t_h, t_w), the sum of x over the inputs whose
// product with that tap survives the crop: [B, C_in, kH, kW] in the accumulation type. One read of x; taps that
// keep nothing get 0.
at::Tensor tap_sums(const at::Tensor& x, const ForwardShape& s);

// The adjoint of tap_sums (the backward's grad_x): taps [B, C_in, kH, kW] in the accumulation type of out's dtype
// -> out [B, C_in, H, W] (empty_broadcast_taps'), each input the sum of the taps that keep it.
void broadcast_taps(const at::Tensor& taps, const ForwardShape& s, at::Tensor& out);

// The padding forward's GEMM operand: weight [C_in, C_out / groups, kH, kW] as [C_in * kH * kW, C_out] in the
// accumulation type, contiguous, rows in the order of the flattened tap sums (zero between groups).
at::Tensor tap_weight_rows(const at::Tensor& weight, const ForwardShape& s);

// The cells of the cuts (pairs of row and column segments) that hold an input some tap keeps: a cell no tap keeps
// stays out of the cropped GEMM (its weight would be 0, and an infinity there times 0 a NaN the model does not
// make). A cell is kept where its row segment and its column segment are.
struct KeptCells {
  std::vector<bool> rows, cols;  // per segment of each cut
  std::vector<int64_t> cells;    // row segment * column segments + column segment, in order
};
KeptCells kept_cells(const ForwardShape& s);
// The same for cuts of x's rows and columns other than cut_of's (element_cut's).
KeptCells kept_cells(const Cut& rows, const Cut& cols);

// Where each cell is one element of x (every segment of both cuts one row or column) and the kept ones are a run of
// rows by a run of columns: those elements, a view of x [B, C_in, kept rows, kept columns]; else undefined. The CPU
// widens them alone for the GEMM over kept cells: r26's forward at padding 3 ([12945, 18, 3, 6] float16 sliced, 6 of
// 18 cells kept) read every plane's cells by the plane loop, 5.1-5.6 ms against the shortcut's 4.7-5.3 (2 cores;
// docs/limits.md §91).
at::Tensor kept_element_block(const at::Tensor& x, const ForwardShape& s);

// How far x's values must outnumber the cells' weight values (C_in x C_out x (taps + kept cells)) for the cropped
// GEMM to run over cells where the backend builds that weight in several passes (cropped_gemm_over_cells).
constexpr double kCellWeightShare = 8.0;

// Whether every cell is one element of x (each segment of both cuts one row or column) and some tap keeps each:
// the cells' sums are then x's own values (cell_sums: x itself where it holds the accumulation type).
bool cells_are_elements(const ForwardShape& s);

// Whether the padding forward's GEMM runs over each plane's kept cells rather than its taps: where the cells are
// fewer, or as many and x's own elements (the forward without the per-tap sums then reads x in the GEMM alone, and the
// one with them gets the same rows, so the same output). The logits are the sum over channels and cells of the cell's
// sum times the summed weight of the taps that keep it. `cell_weight_one_pass`: the backend builds that weight in one
// pass over the weight (CUDA's cell_weight_pairs_kernel), as the taps' weight rows are one permuted copy of it, so
// the cells' fewer rows win wherever they are fewer; else (ATen's passes, a few over C_in x C_out x (taps + cells)
// values) only where the weight is small beside x (kCellWeightShare). H200 sweep shapes: x [1000000, 4, 1, 1] 36
// taps a row against 4 cells, [10253, 127, 333, 1] 3175 against 381, [9319, 1244, 2, 2] (k 2 x 2, padding 1) 4
// elements a plane, each kept by one of the 4 taps; [73, 276, 12, 123] -> 3295 (k 3 x 5), 9 cells against 15 taps
// with a weight of 3.3 times x's values, over cells in one pass only.
bool cropped_gemm_over_cells(const ForwardShape& s, bool cell_weight_one_pass);
// The cropped GEMM's depth per input channel: the kept cells where it runs over cells, else kH * kW.
int64_t cropped_gemm_per_channel(const ForwardShape& s, bool over_cells);

// The padding forward's GEMM [B, depth] x [depth, C_out] (accumulation type, before the scale and biases), over cells
// or taps as cropped_gemm_over_cells says.
struct CroppedGemm {
  at::Tensor x_rows;       // [B, depth], contiguous: the kept cells' sums, or the tap sums, of each plane in turn
  at::Tensor weight_rows;  // [depth, C_out], contiguous, zero between groups
  int64_t per_channel;     // depth / C_in
};
// over_cells: cropped_gemm_over_cells' answer; cells: [B, C_in, row segments, column segments] (cell_sums), or with
// cells_kept_only [B, C_in, kept cells] (the kept cells alone, in order); taps [B, C_in, kH, kW] (tap_sums); weight
// as the forward takes it; weight_rows_built the GEMM's weight where a backend built it, over cells [C_in * kept
// cells, C_out] or over taps as tap_weight_rows lays it out (over_cells says which), else undefined (built here by
// ATen).
CroppedGemm cropped_gemm_operands(bool over_cells, const at::Tensor& cells, bool cells_kept_only,
                                  const at::Tensor& taps, const at::Tensor& weight, const ForwardShape& s,
                                  const at::Tensor& weight_rows_built = at::Tensor());

// The shape of a tap_sums or broadcast_taps call: planes [B, C, H, W], the kernel and the settings (groups 1),
// checked as check_forward_args checks them.
ForwardShape tap_shape(at::IntArrayRef planes, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation);
// tap_sums' arguments: x [B, C, H, W] of a floating dtype, the kernel and the settings.
ForwardShape check_tap_sums_args(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation);
// broadcast_taps' output, uninitialised: [B, C, H, W] of dtype on taps' device, channels_last or contiguous.
at::Tensor empty_broadcast_taps(const at::Tensor& taps, const ForwardShape& s, at::ScalarType dtype,
                                bool channels_last);
// broadcast_taps' arguments: taps [B, C, kH, kW] in the accumulation type of dtype, the settings.
ForwardShape check_broadcast_taps_args(const at::Tensor& taps, int64_t height, int64_t width, at::ScalarType dtype,
                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef output_padding, at::IntArrayRef dilation);


// ATen calls inside an op would otherwise meet an enclosing torch.autocast region (the ops have no autocast kernel,
// so autocast passes them through) and run a GEMM in bfloat16: every backend computes in its documented
// accumulation type whatever the autocast state.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

// float32 for float32/float16/bfloat16 inputs, float64 for float64.
at::ScalarType accumulation_type(at::ScalarType input);

// broadcast_hw's output, allocated after validation: rows [B, C] in accumulation_type(dtype) -> an uninitialised
// [B, C, height, width] tensor of `dtype` on rows' device, channels_last or contiguous.
at::Tensor empty_broadcast_hw(const at::Tensor& rows, int64_t height, int64_t width, at::ScalarType dtype,
                              bool channels_last);

}  // namespace fusedlse
