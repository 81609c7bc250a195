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
#include <cmath>
#include <map>
#include <mutex>
#include <thread>
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
    default: FUSEDLSE_CHECK(false, "unsupported dtype ", t);  // validation rejects these earlier
  }
}

// Multiprocessors and resident blocks per multiprocessor of a kernel, read once per device and kernel. `layout`
// names the fused kernel; none, the broadcast_hw kernel.
struct DeviceFill {
  int64_t multiprocessors;
  int64_t blocks_per_sm;
};

DeviceFill device_fill(int device, ScalarKind kind, c10::optional<XLayout> layout) {
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int>, DeviceFill> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(device, static_cast<int>(kind), layout ? static_cast<int>(*layout) : -1);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  DeviceFill fill{sms, layout ? fused_blocks_per_sm(kind, *layout) : broadcast_blocks_per_sm(kind)};
  cache.emplace(key, fill);
  return fill;
}

// Tuning constants. Reading warps are persistent and own contiguous item ranges, so an item only sets the grain
// of load balance: about kItemsPerWarp items per warp, none smaller than one 16-byte load per lane.
constexpr int64_t kItemsPerWarp = 256;
constexpr int64_t kMinItemBytes = 512;
constexpr int64_t kWholeRowBytes = 16 * 1024;
// Problems whose GEMM is at most this many multiply-adds per batch run it in one unit per batch; larger ones are
// cut into about sqrt(C_in) units so that the unit finished last (the only one not hidden behind other warps'
// reads) is short.
constexpr int64_t kSingleUnitMultiplyAdds = 4096;

// Channels per epilogue unit (c_out == 0: sum_hw, no GEMM). A unit's ticket counts at most
// kMaxUnitRows x (reading warps) partials, far below the int it is kept in.
int64_t epilogue_unit_rows(int64_t channels, int64_t c_out) {
  int64_t rows = channels;
  if (c_out == 0 || channels * c_out > kSingleUnitMultiplyAdds) {
    rows = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(channels))));
  }
  return std::max<int64_t>(1, std::min(rows, kMaxUnitRows));
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
  const DeviceFill fill = device_fill(x.get_device(), kind_of(x.scalar_type()), g.layout);
  const int64_t resident_warps = fill.multiprocessors * fill.blocks_per_sm * kWarpsPerBlock;
  const int64_t wanted_items = kItemsPerWarp * resident_warps;
  LaunchPlan plan;
  int64_t groups_total, group_bytes;
  if (g.layout == XLayout::kRows) {
    groups_total = B * C;
    group_bytes = plane * elem;
  } else {
    plan.vec = static_cast<int>(16 / elem);
    const bool vector_ok = C % plan.vec == 0 && g.stride_p % plan.vec == 0 && g.stride_b % plan.vec == 0 &&
                           reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0;
    if (!vector_ok) plan.vec = 1;
    plan.channels_per_item = std::min<int64_t>(C, 32 * plan.vec);  // one warp's lanes across the channels
    plan.channel_blocks = ceil_div(C, plan.channels_per_item);
    groups_total = B * plan.channel_blocks;
    group_bytes = plane * plan.channels_per_item * elem;
  }
  // Split groups until there are enough items to balance the warps, but no item is under kMinItemBytes. Short
  // rows stay whole: a warp then reads kRowsAtOnce of them at a time, which keeps more loads in flight than
  // reading pieces of one row after another.
  const bool short_rows = g.layout == XLayout::kRows && group_bytes <= kWholeRowBytes;
  const int64_t splits = short_rows ? 1 : std::max<int64_t>(
      1, std::min(ceil_div(wanted_items, groups_total), group_bytes / kMinItemBytes));
  // Row items start 16 bytes apart from the row's start, so an aligned row stays aligned in every item.
  const int64_t grain = g.layout == XLayout::kRows ? 16 / elem : 1;
  plan.chunk = ceil_div(ceil_div(plane, splits), grain) * grain;
  plan.splits = ceil_div(plane, plan.chunk);
  plan.items = groups_total * plan.splits;
  plan.reduce_blocks = std::min(fill.multiprocessors * fill.blocks_per_sm, ceil_div(plan.items, kWarpsPerBlock));
  plan.unit_rows = epilogue_unit_rows(C, mode == Mode::kForward ? c_out : 0);
  plan.groups = ceil_div(C, plan.unit_rows);
  plan.wsum_blocks = mode == Mode::kForward ? plan.groups : 0;
  return plan;
}

// A zeroed int buffer that lives for the rest of the process, allocated from a helper thread: torch.compile's
// CUDA-graph trees route every allocation of the calling thread into a graph's private pool during their warm-up
// runs, where a buffer kept alive would be reported as an untracked live allocation. It is zeroed on `stream`
// after the allocating stream's earlier work on that memory.
at::Tensor lasting_zeros(const at::Tensor& like, cudaStream_t stream, int64_t count) {
  at::Tensor fresh;
  cudaStream_t allocated_on = nullptr;
  std::thread([&] {
    const c10::cuda::CUDAGuard guard(like.device());
    allocated_on = c10::cuda::getCurrentCUDAStream().stream();
    fresh = at::empty({count}, like.options().dtype(at::kInt));
  }).join();
  cudaEvent_t allocated;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&allocated, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(allocated, allocated_on));
  C10_CUDA_CHECK(cudaStreamWaitEvent(stream, allocated, 0));
  C10_CUDA_CHECK(cudaEventDestroy(allocated));
  C10_CUDA_CHECK(cudaMemsetAsync(fresh.data_ptr(), 0, count * sizeof(int), stream));
  return fresh;
}

// Tickets persist between launches, one buffer per (device, stream), zeroed once when it grows; a launch leaves
// every ticket it used at zero, so nothing is cleared per call. Replaced buffers are kept: a captured CUDA graph
// may still point at them. A capture that finds no large enough buffer gets tickets of its own for the call,
// zeroed by a memset node captured with it (run at every replay) and freed with the call's other temporaries.
at::Tensor tickets_for(const at::Tensor& like, cudaStream_t stream, int64_t count) {
  static std::mutex mutex;
  static std::map<std::pair<int, cudaStream_t>, at::Tensor> live;
  static std::vector<at::Tensor> retired;
  std::lock_guard<std::mutex> lock(mutex);
  at::Tensor& buffer = live[{like.get_device(), stream}];
  if (buffer.defined() && buffer.numel() >= count) return buffer;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamGetCaptureInfo(stream, &capture, nullptr));
  if (capture == cudaStreamCaptureStatusActive) return at::zeros({count}, like.options().dtype(at::kInt));
  if (buffer.defined()) retired.push_back(buffer);
  buffer = lasting_zeros(like, stream, std::max<int64_t>({count, 4096, buffer.defined() ? 2 * buffer.numel() : 0}));
  return buffer;
}

// Fills everything but out and sums (both ops' outputs); allocates partials, wsum and zpart in one workspace of the
// accumulation type, and takes the tickets (held by the caller until the launch is queued).
FusedArgs make_fused_args(const at::Tensor& x, const XGeometry& g, Mode mode, int64_t c_out, at::Tensor& workspace,
                          at::Tensor& tickets, cudaStream_t stream) {
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
  const int64_t wsum_count = mode == Mode::kForward ? a.channels * c_out : 0;
  const int64_t zpart_count = mode == Mode::kForward && a.plan.groups > 1 ? a.batch * a.plan.groups * c_out : 0;
  workspace = at::empty({partial_count + wsum_count + zpart_count},
                        x.options().dtype(accumulation_type(x.scalar_type())));
  char* base = static_cast<char*>(workspace.data_ptr());
  const int64_t acc_size = workspace.element_size();
  a.partials = partial_count ? base : nullptr;
  a.wsum = base + partial_count * acc_size;
  a.zpart = base + (partial_count + wsum_count) * acc_size;
  tickets = tickets_for(x, stream, a.batch * a.plan.groups + a.batch);
  a.unit_tickets = tickets.data_ptr<int>();
  a.batch_tickets = a.unit_tickets + a.batch * a.plan.groups;
  return a;
}

// x as the kernels can read it in place, or a contiguous copy for layouts they do not walk.
std::pair<at::Tensor, XGeometry> readable_x(const at::Tensor& x) {
  if (auto g = x_geometry(x)) return {x, *g};
  at::Tensor copy = x.contiguous();
  return {copy, *x_geometry(copy)};
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x_in, const at::Tensor& weight,
                                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef output_padding, at::IntArrayRef dilation,
                                                int64_t groups) {
  const ForwardShape s =
      check_forward_args(x_in, weight, conv_bias, bias, stride, padding, output_padding, dilation, groups);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({s.batch, 1}, x_in.options());
  at::Tensor sums = at::empty({s.batch, s.in_channels}, x_in.options().dtype(accumulation_type(x_in.scalar_type())));
  if (s.batch == 0) return {out, sums};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto [x, geometry] = readable_x(x_in);
  const at::Tensor weight_c = weight.contiguous();
  const at::Tensor bias_flat = bias.reshape({-1});
  c10::optional<at::Tensor> conv_bias_c;
  if (conv_bias.has_value()) conv_bias_c = conv_bias->contiguous();
  at::Tensor workspace, tickets;
  FusedArgs a = make_fused_args(x, geometry, Mode::kForward, s.out_channels, workspace, tickets, stream);
  a.sums = sums.data_ptr();
  if (a.plan.splits == 1) a.partials = a.sums;
  a.weight = weight_c.data_ptr();
  a.kernel_area = s.kernel_h * s.kernel_w;
  a.conv_bias = conv_bias_c.has_value() ? conv_bias_c->data_ptr() : nullptr;
  a.bias = bias_flat.data_ptr();
  a.bias_stride = bias_flat.stride(0);
  a.scale = s.scale;
  a.out = out.data_ptr();
  C10_CUDA_CHECK(launch_fused(a, stream));
  return {out, sums};
}

at::Tensor sum_hw_cuda(const at::Tensor& x_in) {
  check_sum_hw_args(x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor out = at::empty({x_in.size(0), x_in.size(1)}, x_in.options().dtype(accumulation_type(x_in.scalar_type())));
  if (out.numel() == 0) return out;
  if (x_in.size(2) * x_in.size(3) == 0) return out.zero_();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto [x, geometry] = readable_x(x_in);
  at::Tensor workspace, tickets;
  FusedArgs a = make_fused_args(x, geometry, Mode::kSumsOnly, 1, workspace, tickets, stream);
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
  FUSEDLSE_CHECK(C >= 1, "sums must have C_in of at least 1, got shape ", sums_in.sizes());
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
  a.unit_rows = epilogue_unit_rows(C, c_out);
  a.groups = ceil_div(C, a.unit_rows);
  a.scale = scale;
  const at::Tensor zpart = at::empty({a.groups > 1 ? B * a.groups * c_out : 1}, sums.options());
  a.zpart = zpart.data_ptr();
  const at::Tensor tickets = tickets_for(sums, stream, B);
  a.batch_tickets = tickets.data_ptr<int>();
  C10_CUDA_CHECK(launch_gemm_lse(a, stream));
  return out;
}

at::Tensor broadcast_hw_cuda(const at::Tensor& rows_in, int64_t height, int64_t width, at::ScalarType dtype,
                             bool channels_last) {
  at::Tensor out = empty_broadcast_hw(rows_in, height, width, dtype, channels_last);
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(rows_in.device());
  const at::Tensor rows = rows_in.contiguous();
  BroadcastArgs a{};
  a.kind = kind_of(dtype);
  a.channels_last = channels_last;
  a.rows = rows.data_ptr();
  a.out = out.data_ptr();
  a.batch = out.size(0);
  a.channels = out.size(1);
  a.plane = height * width;
  // Enough blocks to fill every multiprocessor, fewer when there are not that many 16-byte stores to give them.
  const DeviceFill fill = device_fill(rows.get_device(), a.kind, c10::nullopt);
  const int64_t vectors = ceil_div(out.numel() * out.element_size(), 16);
  a.blocks = std::max<int64_t>(1, std::min(fill.multiprocessors * fill.blocks_per_sm,
                                           ceil_div(vectors, kBlockThreads * kBroadcastVectorsPerThread)));
  C10_CUDA_CHECK(launch_broadcast_hw(a, c10::cuda::getCurrentCUDAStream().stream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("sum_hw", &sum_hw_cuda);
  m.impl("gemm_lse", &gemm_lse_cuda);
  m.impl("broadcast_hw", &broadcast_hw_cuda);
}

}  // namespace fusedlse
