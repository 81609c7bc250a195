// The op schema (one TORCH_LIBRARY block), argument validation and shape inference. Backends live in cpu/ and
// cuda/; the fake (shape-only) kernels that let the ops trace under torch.compile are in python/.../ops.py.

#include "fusedlse.h"
#include "plan.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <Python.h>

// Importing fusedlse_cuda._C registers the ops; the module itself holds nothing.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

namespace fusedlse {
namespace {

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

}  // namespace

at::ScalarType accumulation_type(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
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
  FUSEDLSE_CHECK(c.padding[0] == 0 && c.padding[1] == 0, "padding ", padding,
              " is not supported yet: padding > 0 crops the transposed convolution's border, so its mean no longer "
              "factors through sum_HW(x); only padding=0 is");
  FUSEDLSE_CHECK(groups >= 1, "groups must be positive, got ", groups);
  FUSEDLSE_CHECK(groups == 1, "groups=", groups, " is not supported yet; only groups=1 is");
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

ForwardShape check_forward_args(const at::Tensor& x, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                at::IntArrayRef dilation, int64_t groups) {
  const ConvSettings conv = check_conv_settings(stride, padding, output_padding, dilation, groups);
  check_x_and_weight(x, weight);
  ForwardShape s;
  s.batch = x.size(0);
  s.in_channels = x.size(1);
  s.height = x.size(2);
  s.width = x.size(3);
  s.out_channels = weight.size(1);
  s.kernel_h = weight.size(2);
  s.kernel_w = weight.size(3);
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
  // nn.ConvTranspose2d's output size, with padding 0, and its area: checked, since huge strides or dilations
  // would wrap int64 (and the mean's scale with it).
  s.out_height = output_extent(s.height, conv.stride[0], conv.dilation[0], s.kernel_h, conv.output_padding[0], "H_out");
  s.out_width = output_extent(s.width, conv.stride[1], conv.dilation[1], s.kernel_w, conv.output_padding[1], "W_out");
  int64_t area = 0;
  FUSEDLSE_CHECK(!__builtin_mul_overflow(s.out_height, s.out_width, &area), "the output's H_out * W_out = ",
                 s.out_height, " * ", s.out_width, " overflows int64; use a smaller stride or dilation");
  s.scale = 1.0 / static_cast<double>(area);
  return s;
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
  // forward returns (out [B, 1] in x's dtype, sums [B, C_in] = sum_HW(x) in the accumulation type); the sums are
  // what the backward needs, kept so that it does not read x again.
  m.def("forward(Tensor x, Tensor weight, Tensor? conv_bias, Tensor bias, int[2] stride=1, int[2] padding=0, "
        "int[2] output_padding=0, int[2] dilation=1, int groups=1) -> (Tensor, Tensor)");
  m.def("sum_hw(Tensor x) -> Tensor");
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
  // The plan the CUDA forward would run for x and weight, as JSON (fusedlse_cuda.explain); CPU tensors: the CPU path.
  m.def("explain(Tensor x, Tensor weight) -> str");
  // The planner alone, for made-up devices (tests/test_plan.py): problem = [B, C_in, C_out, H, W, element bytes,
  // layout (plan::Layout), kH * kW, plane runs (0 or 1), planes aligned (0 or 1), pixels follow (0 or 1)], device =
  // [SMs, L2 bytes, shared bytes per SM, warps per SM, GB/s, float32 GFLOP/s].
  m.def("plan(int[] problem, float[] device) -> str", [](at::IntArrayRef problem, c10::ArrayRef<double> device) {
    FUSEDLSE_CHECK(problem.size() == 11, "plan: problem must have 11 values [B, C_in, C_out, H, W, element bytes, "
                   "layout, kernel area, plane runs, planes aligned, pixels follow], got ",
                   static_cast<int64_t>(problem.size()));
    FUSEDLSE_CHECK(device.size() == 6, "plan: device must have 6 values, got ", static_cast<int64_t>(device.size()));
    FUSEDLSE_CHECK(problem[6] >= 0 && problem[6] <= 3, "plan: layout must be 0..3, got ", problem[6]);
    FUSEDLSE_CHECK(problem[8] == 0 || problem[8] == 1, "plan: plane runs must be 0 or 1, got ", problem[8]);
    FUSEDLSE_CHECK(problem[9] == 0 || problem[9] == 1, "plan: planes aligned must be 0 or 1, got ", problem[9]);
    FUSEDLSE_CHECK(problem[10] == 0 || problem[10] == 1, "plan: pixels follow must be 0 or 1, got ", problem[10]);
    const plan::Problem p{problem[0], problem[1], problem[2], problem[3], problem[4], problem[5],
                          static_cast<plan::Layout>(problem[6]), problem[7], problem[8] == 1, problem[9] == 1,
                          problem[10] == 1};
    const plan::DeviceProps d{static_cast<int64_t>(device[0]), static_cast<int64_t>(device[1]),
                              static_cast<int64_t>(device[2]), static_cast<int64_t>(device[3]), device[4], device[5]};
    return plan::to_json(plan::choose(p, d), p, d);
  });
  // For measurements only (bench/strategies.py): every later CUDA forward runs this strategy (plan::Strategy) and,
  // for the split one, this reader (plan::Reader) and epilogue (plan::Epilogue); -1 leaves that to the planner.
  m.def("_force_plan(int strategy, int reader, int epilogue=-1) -> ()",
        [](int64_t strategy, int64_t reader, int64_t epilogue) {
          FUSEDLSE_CHECK(strategy >= -1 && strategy <= 1, "_force_plan: strategy must be -1, 0 or 1, got ", strategy);
          FUSEDLSE_CHECK(reader >= -1 && reader <= 4, "_force_plan: reader must be -1..4, got ", reader);
          FUSEDLSE_CHECK(epilogue >= -1 && epilogue <= 3, "_force_plan: epilogue must be -1..3, got ", epilogue);
          plan::force(static_cast<int>(strategy), static_cast<int>(reader), static_cast<int>(epilogue));
        });
  // For measurements and tests only (bench/experiments/run_walks.py, tests/test_strategies.py): every later CUDA
  // read of tiny planes that follow each other takes this walk (plan::TinyPlaneWalk); -1 leaves it to the planner.
  m.def("_force_walk(int walk) -> ()", [](int64_t walk) {
    FUSEDLSE_CHECK(walk >= -1 && walk <= 2, "_force_walk: walk must be -1, 0, 1 or 2, got ", walk);
    plan::force_walk(static_cast<int>(walk));
  });
  // No tensors, one kernel for every device: lets ModelNew reject unsupported settings when it is built.
  m.def("check_conv_settings(int[2] stride=1, int[2] padding=0, int[2] output_padding=0, int[2] dilation=1, "
        "int groups=1) -> ()",
        [](at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
           int64_t groups) { check_conv_settings(stride, padding, output_padding, dilation, groups); });
}

}  // namespace fusedlse
