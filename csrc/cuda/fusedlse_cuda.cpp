// CUDA backend glue: layout detection, launch sizing (plan_launch is the only place the grid is sized), the
// per-stream ticket buffers and the workspaces. The kernels are in fused_kernels.cu.

#include "../fusedlse.h"
#include "fused_kernels.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace fusedlse {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

ScalarKind kind_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ScalarKind::kFloat;
    case at::kHalf: return ScalarKind::kHalf;
    case at::kBFloat16: return ScalarKind::kBFloat16;
    case at::kDouble: return ScalarKind::kDouble;
    default: TORCH_CHECK(false, "unsupported dtype ", t);  // validation rejects these earlier
  }
}

// Multiprocessors and resident fused-kernel blocks per multiprocessor, read once per device and kernel.
struct DeviceFill {
  int64_t multiprocessors;
  int64_t blocks_per_sm;
};

DeviceFill device_fill(int device, ScalarKind kind, XLayout layout) {
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int>, DeviceFill> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(device, static_cast<int>(kind), static_cast<int>(layout));
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DeviceFill fill{sms, fused_blocks_per_sm(kind, layout)};
  cache.emplace(key, fill);
  return fill;
}

// Tuning constants, all in bytes of x: what one warp (row layout) or one block (channels-last layout) reads per
// work item, and the fewest bytes worth splitting a row for. Work items are sized so that the grid covers every
// resident block slot kWaves times over when x is large enough.
constexpr int64_t kWarpItemBytes = 16 * 1024;
constexpr int64_t kMinWarpItemBytes = 2 * 1024;
constexpr int64_t kBlockItemBytes = 64 * 1024;
constexpr int64_t kWaves = 4;
// The epilogue's GEMM is cut into units of about this many multiply-adds, so that the unit finished last (the
// only one not hidden behind other blocks' reads) is short.
constexpr int64_t kUnitMultiplyAdds = 8192;

// Channels per epilogue unit (c_out == 0: sums only, no GEMM). Tickets count partials in an int, so a unit
// holds fewer than 2^30 of them.
int64_t epilogue_unit_rows(int64_t channels, int64_t c_out, int64_t splits) {
  const int64_t by_gemm = c_out > 0 ? std::max<int64_t>(kUnitMultiplyAdds / c_out, 1) : kMaxUnitRows;
  return std::min({by_gemm, channels, kMaxUnitRows, std::max<int64_t>(1, (int64_t{1} << 30) / splits)});
}

struct XGeometry {
  XLayout layout;
  int64_t stride_b, stride_c, stride_p;
};

// Rows if every (b, c) plane is contiguous; channels-last if channels are adjacent and (H, W) flatten to one
// stride; otherwise the caller copies x.
c10::optional<XGeometry> x_geometry(const at::Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3);
  const int64_t sh = x.stride(2), sw = x.stride(3);
  if ((W == 1 || sw == 1) && (H == 1 || sh == W)) return XGeometry{XLayout::kRows, x.stride(0), x.stride(1), 1};
  if ((x.size(1) == 1 || x.stride(1) == 1) && (H == 1 || W == 1 || sh == W * sw)) {
    const int64_t stride_p = W > 1 ? sw : (H > 1 ? sh : 1);
    return XGeometry{XLayout::kChannelsLast, x.stride(0), 1, stride_p};
  }
  return c10::nullopt;
}

LaunchPlan plan_launch(const XGeometry& g, const at::Tensor& x, Mode mode, int64_t c_out) {
  const int64_t B = x.size(0), C = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t elem = x.element_size();
  const int64_t rows = B * C;
  const DeviceFill fill = device_fill(x.get_device(), kind_of(x.scalar_type()), g.layout);
  const int64_t resident_blocks = fill.multiprocessors * fill.blocks_per_sm;
  LaunchPlan plan;
  plan.vec = static_cast<int>(16 / elem);

  if (g.layout == XLayout::kRows) {
    const int64_t row_bytes = plane * elem;
    const int64_t wanted_items = kWaves * resident_blocks * kWarpsPerBlock;
    if (row_bytes > kWarpItemBytes) {
      int64_t splits = ceil_div(row_bytes, kWarpItemBytes);
      if (rows * splits < wanted_items) {
        splits = std::max(splits, std::min(ceil_div(wanted_items, rows), ceil_div(row_bytes, kMinWarpItemBytes)));
      }
      // Chunks start 16 bytes apart from the row's start, so an aligned row stays aligned in every chunk.
      plan.chunk = ceil_div(ceil_div(plane, splits), plan.vec) * plan.vec;
      plan.splits = ceil_div(plane, plan.chunk);
      plan.rows_per_warp_item = 1;
      plan.warp_items = rows * plan.splits;
    } else {
      plan.splits = 1;
      plan.chunk = plane;
      const int64_t by_size = std::max<int64_t>(1, kWarpItemBytes / std::max<int64_t>(row_bytes, 1));
      const int64_t by_fill = std::max<int64_t>(1, rows / wanted_items);
      plan.rows_per_warp_item = std::min(by_size, by_fill);
      plan.warp_items = ceil_div(rows, plan.rows_per_warp_item);
    }
    plan.reduce_blocks = ceil_div(plan.warp_items, kWarpsPerBlock);
  } else {
    const bool vector_ok = C % plan.vec == 0 && g.stride_p % plan.vec == 0 && g.stride_b % plan.vec == 0 &&
                           reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0;
    if (!vector_ok) plan.vec = 1;
    plan.channels_per_item = std::min<int64_t>(C, kBlockThreads * plan.vec);
    plan.channel_blocks = ceil_div(C, plan.channels_per_item);
    const int64_t position_lanes = kBlockThreads / (plan.channels_per_item / plan.vec);
    int64_t splits = ceil_div(plane * plan.channels_per_item * elem, kBlockItemBytes);
    const int64_t items_per_split = B * plan.channel_blocks;
    if (items_per_split * splits < kWaves * resident_blocks) {
      splits = std::max(splits, std::min(ceil_div(kWaves * resident_blocks, items_per_split),
                                         ceil_div(plane, position_lanes)));
    }
    plan.chunk = ceil_div(plane, splits);
    plan.splits = ceil_div(plane, plan.chunk);
    plan.reduce_blocks = items_per_split * plan.splits;
  }

  plan.unit_rows = epilogue_unit_rows(C, mode == Mode::kForward ? c_out : 0, plan.splits);
  plan.groups = ceil_div(C, plan.unit_rows);
  plan.wsum_blocks = mode == Mode::kForward ? plan.groups : 0;
  TORCH_CHECK(plan.reduce_blocks + plan.wsum_blocks < (int64_t{1} << 31), "x is too large for one launch: ",
              plan.reduce_blocks + plan.wsum_blocks, " blocks");
  return plan;
}

// Tickets persist between launches, one buffer per (device, stream), zeroed once when it grows; a launch leaves
// every ticket it used at zero. Retired buffers are kept alive: a captured CUDA graph may still point at them.
struct TicketBuffers {
  std::mutex mutex;
  std::map<std::pair<int, cudaStream_t>, at::Tensor> live;
  std::vector<at::Tensor> retired;
};

int* tickets_for(const at::Tensor& like, cudaStream_t stream, int64_t count) {
  static TicketBuffers buffers;
  std::lock_guard<std::mutex> lock(buffers.mutex);
  const auto key = std::make_pair(like.get_device(), stream);
  auto it = buffers.live.find(key);
  if (it != buffers.live.end() && it->second.numel() >= count) return it->second.data_ptr<int>();
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  TORCH_CHECK(capture == cudaStreamCaptureStatusNone,
              "fusedlse needs a larger ticket buffer (", count, " counters) while a CUDA graph is being captured; "
              "run the op once with the same shapes on this stream before capturing (the usual warm-up)");
  int64_t capacity = std::max<int64_t>(count, 4096);
  if (it != buffers.live.end()) {
    capacity = std::max(capacity, 2 * it->second.numel());
    buffers.retired.push_back(it->second);
  }
  at::Tensor fresh = at::zeros({capacity}, like.options().dtype(at::kInt));
  buffers.live[key] = fresh;
  return fresh.data_ptr<int>();
}

// Fills everything but out/sums; allocates partials, wsum and zpart in one workspace of the accumulation type.
FusedArgs make_fused_args(const at::Tensor& x, const XGeometry& g, Mode mode, int64_t c_out, at::Tensor& workspace,
                          cudaStream_t stream) {
  FusedArgs a{};
  a.kind = kind_of(x.scalar_type());
  a.layout = g.layout;
  a.mode = mode;
  a.x = x.data_ptr();
  a.batch = x.size(0);
  a.channels = x.size(1);
  a.plane = x.size(2) * x.size(3);
  a.stride_b = g.stride_b;
  a.stride_c = g.stride_c;
  a.stride_p = g.stride_p;
  a.c_out = c_out;
  a.plan = plan_launch(g, x, mode, c_out);
  const int64_t rows = a.batch * a.channels;
  const int64_t partial_count = a.plan.splits > 1 ? rows * a.plan.splits : 0;
  const int64_t sums_count = mode == Mode::kForward ? rows : 0;  // sum_hw writes into its output
  const int64_t wsum_count = mode == Mode::kForward ? a.channels * c_out : 0;
  const int64_t zpart_count = mode == Mode::kForward && a.plan.groups > 1 ? a.batch * a.plan.groups * c_out : 0;
  workspace = at::empty({partial_count + sums_count + wsum_count + zpart_count},
                        x.options().dtype(accumulation_type(x.scalar_type())));
  char* base = static_cast<char*>(workspace.data_ptr());
  const int64_t acc_size = workspace.element_size();
  a.partials = partial_count ? base : nullptr;
  a.sums = sums_count ? base + partial_count * acc_size : nullptr;
  a.wsum = base + (partial_count + sums_count) * acc_size;
  a.zpart = base + (partial_count + sums_count + wsum_count) * acc_size;
  int* tickets = tickets_for(x, stream, a.batch * a.plan.groups + a.batch);
  a.unit_tickets = tickets;
  a.batch_tickets = tickets + a.batch * a.plan.groups;
  return a;
}

// x as the kernels can read it in place, or a contiguous copy for layouts they do not walk.
std::pair<at::Tensor, XGeometry> readable_x(const at::Tensor& x) {
  if (auto g = x_geometry(x)) return {x, *g};
  at::Tensor copy = x.contiguous();
  return {copy, *x_geometry(copy)};
}

at::Tensor forward_cuda(const at::Tensor& x_in, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
                        const at::Tensor& bias) {
  const ForwardShape s = check_forward_args(x_in, weight, conv_bias, bias);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({s.batch, 1}, x_in.options());
  if (s.batch == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto [x, geometry] = readable_x(x_in);
  const at::Tensor weight_c = weight.contiguous();
  const at::Tensor bias_flat = bias.reshape({-1});
  c10::optional<at::Tensor> conv_bias_c;
  if (conv_bias.has_value()) conv_bias_c = conv_bias->contiguous();
  at::Tensor workspace;
  FusedArgs a = make_fused_args(x, geometry, Mode::kForward, s.out_channels, workspace, stream);
  if (a.plan.splits == 1) a.partials = a.sums;
  a.weight = weight_c.data_ptr();
  a.kernel_area = s.kernel_h * s.kernel_w;
  a.conv_bias = conv_bias_c.has_value() ? conv_bias_c->data_ptr() : nullptr;
  a.bias = bias_flat.data_ptr();
  a.bias_stride = bias_flat.stride(0);
  a.scale = s.scale;
  a.out = out.data_ptr();
  C10_CUDA_CHECK(launch_fused(a, stream));
  return out;
}

at::Tensor sum_hw_cuda(const at::Tensor& x_in) {
  check_sum_hw_args(x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({x_in.size(0), x_in.size(1)}, x_in.options().dtype(accumulation_type(x_in.scalar_type())));
  if (out.numel() == 0) return out;
  if (x_in.size(2) * x_in.size(3) == 0) return out.zero_();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto [x, geometry] = readable_x(x_in);
  at::Tensor workspace;
  FusedArgs a = make_fused_args(x, geometry, Mode::kSumsOnly, 1, workspace, stream);
  a.sums = out.data_ptr();
  if (a.plan.splits == 1) a.partials = a.sums;
  C10_CUDA_CHECK(launch_fused(a, stream));
  return out;
}

at::Tensor gemm_lse_cuda(const at::Tensor& sums_in, const at::Tensor& weight_sum_in, const at::Tensor& total_bias_in,
                         double scale) {
  check_gemm_lse_args(sums_in, weight_sum_in, total_bias_in);
  const c10::cuda::CUDAGuard guard(sums_in.device());
  const int64_t B = sums_in.size(0), C = sums_in.size(1), c_out = weight_sum_in.size(1);
  at::Tensor out = at::empty({B, 1}, sums_in.options());
  if (B == 0) return out;
  TORCH_CHECK(C >= 1, "sums must have C_in of at least 1, got shape ", sums_in.sizes());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const at::Tensor sums = sums_in.contiguous(), weight_sum = weight_sum_in.contiguous();
  const at::Tensor total_bias = total_bias_in.reshape({-1}).contiguous();
  GemmLseArgs a{};
  a.is_double = sums.scalar_type() == at::kDouble;
  a.sums = sums.data_ptr();
  a.weight_sum = weight_sum.data_ptr();
  a.total_bias = total_bias.data_ptr();
  a.out = out.data_ptr();
  a.batch = B;
  a.channels = C;
  a.c_out = c_out;
  a.unit_rows = epilogue_unit_rows(C, c_out, 1);
  a.groups = ceil_div(C, a.unit_rows);
  a.scale = scale;
  const at::Tensor zpart = at::empty({a.groups > 1 ? B * a.groups * c_out : 1}, sums.options());
  a.zpart = zpart.data_ptr();
  a.batch_tickets = tickets_for(sums, stream, B);
  C10_CUDA_CHECK(launch_gemm_lse(a, stream));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("sum_hw", &sum_hw_cuda);
  m.impl("gemm_lse", &gemm_lse_cuda);
}

}  // namespace fusedlse
