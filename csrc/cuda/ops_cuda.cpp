// CUDA backend glue: layout detection, the planner's inputs (../plan.h chooses the strategy), the fused launch's
// sizing (plan_launch is the only place its grid is sized), each launch's workspace (tickets included) and the split
// strategy's steps. The kernels are behind kernels.h; the tuning constants in tuning.h.

#include "../fusedlse.h"
#include "../plan.h"
#include "kernels.h"
#include "once_per_key.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

namespace fusedlse {
namespace {

using plan::ceil_div;

ScalarKind kind_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ScalarKind::kFloat;
    case at::kHalf: return ScalarKind::kHalf;
    case at::kBFloat16: return ScalarKind::kBFloat16;
    case at::kDouble: return ScalarKind::kDouble;
    default: FUSEDLSE_CHECK(false, "unsupported dtype ", t);  // validation rejects these earlier
  }
}

// Dense bfloat16 tensor-core flops with float32 accumulation per clock of a multiprocessor, from the vendor's peaks
// over SMs x boost clock: A100 (8.0) 312 TFLOP/s, H100 and H200 (9.0) 989, B200 (10.0) about 2250; the GeForce parts
// of 8.6, 8.9 and 12.0 (RTX 3090, 4090, 5090) accumulate in float32 at half their float16-accumulation rate, 71-209
// (their workstation kin at twice that). 0 where not known.
double bf16_flops_per_sm_clock(int64_t major, int64_t minor) {
  if (minor == 0 && major >= 8 && major <= 10) return major == 8 ? 2048 : major == 9 ? 4096 : 8192;
  if (major == 8 || major == 12) return 512;
  return 0;
}

// Bytes of an element of `kind`.
int64_t element_bytes_of(ScalarKind kind) {
  return kind == ScalarKind::kDouble ? 8 : kind == ScalarKind::kFloat ? 4 : 2;
}

// What the planner and the launch sizing need of a device, read once per device.
plan::DeviceProps device_props(int device) {
  return once_per_key(device, [device] {
    const auto attribute = [device](cudaDeviceAttr what) {
      int value = 0;
      C10_CUDA_CHECK(cudaDeviceGetAttribute(&value, what, device));
      return static_cast<int64_t>(value);
    };
    plan::DeviceProps props{};
    props.multiprocessors = attribute(cudaDevAttrMultiProcessorCount);
    props.l2_bytes = attribute(cudaDevAttrL2CacheSize);
    props.shared_bytes_per_sm = attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor);
    props.warps_per_sm = attribute(cudaDevAttrMaxThreadsPerMultiProcessor) / 32;
    // kHz x bits: double data rate, bytes, GB/s.
    props.read_gbps =
        2.0 * attribute(cudaDevAttrMemoryClockRate) * 1e3 * attribute(cudaDevAttrGlobalMemoryBusWidth) / 8 / 1e9;
    // 128 float32 lanes per multiprocessor on sm_80 and later, 2 flops per FMA.
    const double sm_gclocks = props.multiprocessors * attribute(cudaDevAttrClockRate) * 1e3 / 1e9;
    props.fp32_gflops = 2.0 * 128 * sm_gclocks;
    props.bf16_gflops = bf16_flops_per_sm_clock(attribute(cudaDevAttrComputeCapabilityMajor),
                                                attribute(cudaDevAttrComputeCapabilityMinor)) *
                        sm_gclocks;
    return props;
  });
}

// Multiprocessors (device_props) and resident blocks per multiprocessor of the fused kernel for `layout`, the latter
// read once per device, dtype and layout.
struct DeviceFill {
  int64_t multiprocessors;
  int64_t blocks_per_sm;
};

DeviceFill device_fill(int device, ScalarKind kind, XLayout layout) {
  const auto key = std::make_tuple(device, static_cast<int>(kind), static_cast<int>(layout));
  return once_per_key(key, [&] {
    return DeviceFill{device_props(device).multiprocessors, fused_blocks_per_sm(kind, layout)};
  });
}

// How the readers load `t` (plan::evict_first_loads): its bytes against the L2 of `device`, t's.
bool loads_evict_first(const at::Tensor& t, const plan::DeviceProps& device) {
  return plan::evict_first_loads(t.numel() * t.element_size(), device);
}

int64_t workspace_budget_bytes(int64_t input_bytes) {
  return std::max(kWorkspaceFloorBytes, kWorkspaceInputShare * input_bytes);
}

// Batches one launch may take so that its zpart, with the widest units, fits `budget_values` (at least one).
int64_t batches_per_launch(int64_t B, int64_t C, int64_t c_out, int64_t budget_values) {
  const int64_t per_batch = ceil_div(C, kWidestUnitChannels) * c_out;
  return std::clamp<int64_t>(budget_values / per_batch, 1, std::max<int64_t>(B, 1));
}

struct UnitPlan {
  int64_t batches, channels, groups, tiles;
};

// Shared-memory values a unit of `batches` x `channels` takes (batches padded to a multiple of four).
int64_t unit_sum_values(int64_t batches, int64_t channels) { return ceil_div(batches, 4) * 4 * channels; }

// Epilogue units for a GEMM [B, C] x [C, c_out]; channel groups are multiples of `group_channels` (the channels
// one reading item covers). row_bytes: bytes of input per (b, c) row. zpart_budget_values: what the units' shares
// of the GEMM (B x groups x c_out values) may take; units get wider until they fit, up to kWidestUnitChannels
// (batches_per_launch keeps B small enough for that).
UnitPlan plan_units(int64_t B, int64_t C, int64_t c_out, int64_t group_channels, int64_t row_bytes,
                    int64_t acc_bytes, int64_t zpart_budget_values) {
  int64_t channels = C * c_out > kUnitWeightValues ? std::max<int64_t>(1, kUnitWeightValues / c_out) : C;
  channels = std::min(channels, kWidestUnitChannels);
  if (channels < C) channels = std::max(group_channels, channels / group_channels * group_channels);
  // Wider units where B x ceil(C / channels) x c_out values of zpart would pass the budget. kWidestUnitChannels is a
  // multiple of every group_channels smaller than C (32 times the channels of one 16-byte load, or 32).
  const int64_t groups_allowed = std::max<int64_t>(1, zpart_budget_values / std::max<int64_t>(1, B * c_out));
  const int64_t budget_channels = ceil_div(ceil_div(C, groups_allowed), group_channels) * group_channels;
  channels = std::min(C, std::max(channels, std::min(budget_channels, kWidestUnitChannels)));
  int64_t batches = ceil_div(kWeightRereadShare * c_out * acc_bytes, std::max<int64_t>(row_bytes, 1));
  batches = std::max<int64_t>(1, std::min<int64_t>({batches, kMaxUnitBatches, B}));
  while (batches > 1 && unit_sum_values(batches, channels) > kMaxUnitSums) --batches;
  return UnitPlan{batches, channels, ceil_div(C, channels), ceil_div(B, batches)};
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

// Self-contained tiles (see LaunchPlan) when x is small enough for one wave of them: batches per tile, or 0 when
// they do not apply. kernel_area: taps per weight value.
int64_t self_contained_batches(const XGeometry& g, const at::Tensor& x, int64_t c_out, int64_t kernel_area,
                               int64_t slots) {
  const int64_t B = x.size(0), C = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t elem = x.element_size(), vec = 16 / elem;
  const int64_t acc_bytes = c10::elementSize(accumulation_type(x.scalar_type()));
  const bool contiguous_batches = g.layout == XLayout::kRows && g.stride_c == plane && g.stride_b == C * plane;
  if (!contiguous_batches || plane % vec != 0 || reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0 ||
      C * c_out * kernel_area > kSelfContainedWeightValues || unit_sum_values(1, C) > kMaxUnitSums) {
    return 0;
  }
  const int64_t batches = ceil_div(B, slots);
  const int64_t max_vectors = std::min<int64_t>(kBlockThreads * kSelfContainedLoads, kReduceBytes / acc_bytes);
  const bool fits = batches <= kMaxUnitBatches && unit_sum_values(batches, C) <= kMaxUnitSums &&
                    batches * C * plane / vec <= max_vectors &&
                    self_contained_stage_values(C, c_out) * acc_bytes <= kStageBytes - kReduceBytes;
  return fits ? batches : 0;
}

LaunchPlan plan_launch(const XGeometry& g, const at::Tensor& x, Mode mode, int64_t c_out, int64_t kernel_area,
                       int64_t zpart_budget_values) {
  const int64_t B = x.size(0), C = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t elem = x.element_size();
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  FUSEDLSE_CHECK(B <= kInt32Max && C <= kInt32Max, "x: the CUDA kernels expect batch and channel counts below 2^31, "
                 "got shape ", x.sizes());
  const DeviceFill fill = device_fill(x.get_device(), kind_of(x.scalar_type()), g.layout);
  const int64_t slots = fill.multiprocessors * fill.blocks_per_sm;
  LaunchPlan plan;
  if (mode == Mode::kForward) {
    if (const int64_t batches = self_contained_batches(g, x, c_out, kernel_area, slots)) {
      plan.self_contained = true;
      plan.tickets = false;
      plan.unit_batches = batches;
      plan.unit_channels = C;
      plan.unit_groups = 1;
      plan.tiles = ceil_div(B, batches);
      plan.read_blocks = plan.tiles;
      return plan;
    }
  }
  const int64_t tile_bytes = std::clamp(B * C * plane * elem / slots, kMinTileBytes, kMaxTileBytes);
  int64_t row_positions_per_tile;  // positions of one group a split tile covers, before balancing
  if (g.layout == XLayout::kRows) {
    plan.group_channels = 1;
    plan.groups_per_batch = C;
    const int64_t row_bytes = plane * elem;
    if (row_bytes * kWarpsPerBlock <= tile_bytes) {  // short rows: whole rows, a few per warp
      plan.rows_per_warp =
          std::min<int64_t>(kMaxRowsPerWarp, tile_bytes / (kWarpsPerBlock * std::max<int64_t>(row_bytes, 1)));
      plan.chunk = plane;
      plan.rows_per_block = kWarpsPerBlock * plan.rows_per_warp;
      plan.read_blocks = ceil_div(B * C, plan.rows_per_block);
    }
    row_positions_per_tile = tile_bytes / elem;
  } else {
    plan.vec = static_cast<int>(16 / elem);
    const bool vector_ok = C % plan.vec == 0 && g.stride_p % plan.vec == 0 && g.stride_b % plan.vec == 0 &&
                           reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0;
    if (!vector_ok) plan.vec = 1;
    plan.group_channels = std::min<int64_t>(C, 32 * plan.vec);  // one warp's lanes across the channels
    plan.groups_per_batch = ceil_div(C, plan.group_channels);
    row_positions_per_tile = std::max<int64_t>(1, tile_bytes / (plan.group_channels * elem));
  }
  if (plan.rows_per_warp == 0) {
    // Equal pieces; row pieces start 16 bytes apart from the row's start, so an aligned row stays aligned.
    const int64_t grain = g.layout == XLayout::kRows ? 16 / elem : 1;
    plan.splits = std::max<int64_t>(1, ceil_div(plane, row_positions_per_tile));
    plan.chunk = std::max<int64_t>(grain, ceil_div(ceil_div(plane, plan.splits), grain) * grain);
    plan.splits = std::max<int64_t>(1, ceil_div(plane, plan.chunk));
    plan.read_blocks = B * plan.groups_per_batch * plan.splits;
  }
  if (mode == Mode::kForward) {
    const UnitPlan units = plan_units(B, C, c_out, plan.group_channels, plane * elem,
                                      c10::elementSize(accumulation_type(x.scalar_type())), zpart_budget_values);
    plan.unit_batches = units.batches;
    plan.unit_channels = units.channels;
    plan.unit_groups = units.groups;
    plan.tiles = units.tiles;
    // Every group gets as many fold pieces as the widest one needs (spare pieces fold nothing but still count).
    plan.fold_pieces = ceil_div(units.channels * c_out, kFoldValues);
    plan.wsum_blocks = units.groups * plan.fold_pieces;
  } else {  // sum_hw: a unit is one reading group, whose partials it adds up
    plan.unit_batches = 1;
    plan.unit_channels = plan.group_channels;
    plan.unit_groups = plan.groups_per_batch;
    plan.tiles = B;
    plan.tickets = plan.splits > 1;
    if (plan.rows_per_warp > 0) {  // whole rows need no unit; one per batch keeps the walk over rows cheap
      plan.unit_channels = C;
      plan.unit_groups = 1;
    }
  }
  FUSEDLSE_CHECK(plan.read_blocks + plan.wsum_blocks <= kInt32Max, "x is too large for one launch: ",
                 plan.read_blocks + plan.wsum_blocks, " blocks");
  return plan;
}

// One launch's scratch, carved from one allocation of the caching allocator in 16-byte aligned sections: the tickets
// (zeroed here, on the launch's stream), then partials, wsum and zpart in the accumulation type. Nothing outlives
// the call, so no two launches that may run at once share tickets: the allocator hands a block to another stream
// only after the work queued on it is done, and a CUDA-graph capture allocates (and captures the zeroing memset)
// from its own pool. A launch that stopped half-way cannot leave a count behind for a later one.
struct Scratch {
  at::Tensor storage;
  char* next = nullptr;

  Scratch(const at::Tensor& like, std::initializer_list<int64_t> section_bytes) {
    int64_t total = 0;
    for (int64_t bytes : section_bytes) total += ceil_div(bytes, 16) * 16;
    if (total == 0) return;  // e.g. sum_hw over whole rows
    storage = at::empty({total}, like.options().dtype(at::kByte));
    next = static_cast<char*>(storage.data_ptr());
  }
  void* take(int64_t bytes) {
    void* section = bytes ? next : nullptr;
    next += ceil_div(bytes, 16) * 16;
    return section;
  }
  // The next `count` ints, zeroed on `stream` before the launch that counts on them (null when count is 0).
  int* take_tickets(int64_t count, cudaStream_t stream) {
    int* tickets = static_cast<int*>(take(count * int64_t{sizeof(int)}));
    if (count) C10_CUDA_CHECK(cudaMemsetAsync(tickets, 0, count * sizeof(int), stream));
    return tickets;
  }
};

// Fills everything but out and sums (both ops' outputs) and the weights; allocates the launch's scratch into
// `scratch` (held by the caller until the launch is queued) and zeroes its tickets on `stream`.
FusedArgs make_fused_args(const at::Tensor& x, const XGeometry& g, Mode mode, int64_t c_out, int64_t kernel_area,
                          int64_t zpart_budget_values, std::optional<Scratch>& scratch, cudaStream_t stream) {
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
  a.kernel_area = kernel_area;
  a.plan = plan_launch(g, x, mode, c_out, kernel_area, zpart_budget_values);
  a.plan.evict_first = loads_evict_first(x, device_props(x.get_device()));
  const int64_t rows = a.batch * a.channels;
  const int64_t acc_size = c10::elementSize(accumulation_type(x.scalar_type()));
  a.wsum_stride = weight_sum_stride(c_out, acc_size);
  const int64_t units = a.plan.tiles * a.plan.unit_groups;
  // Batch tickets are only used by forward launches that also take unit tickets.
  const int64_t ticket_count = a.plan.tickets ? units + a.plan.tiles : 0;
  const int64_t partial_bytes = a.plan.splits > 1 ? rows * a.plan.splits * acc_size : 0;
  // A self-contained tile folds its own W.sum and keeps its GEMM in shared memory: only a forward's units take both.
  const bool units_forward = mode == Mode::kForward && !a.plan.self_contained;
  const int64_t wsum_bytes = units_forward ? a.channels * a.wsum_stride * acc_size : 0;
  const int64_t zpart_bytes = units_forward ? a.batch * a.plan.unit_groups * c_out * acc_size : 0;
  scratch.emplace(x, std::initializer_list<int64_t>{ticket_count * int64_t{sizeof(int)}, partial_bytes, wsum_bytes,
                                                   zpart_bytes});
  a.unit_tickets = scratch->take_tickets(ticket_count, stream);
  a.batch_tickets = ticket_count ? a.unit_tickets + units : nullptr;
  a.partials = scratch->take(partial_bytes);
  a.wsum = scratch->take(wsum_bytes);
  a.zpart = scratch->take(zpart_bytes);
  return a;
}

// x as the kernels can read it in place, or a contiguous copy for layouts they do not walk.
std::pair<at::Tensor, XGeometry> readable_x(const at::Tensor& x) {
  if (auto g = x_geometry(x)) return {x, *g};
  at::Tensor copy = x.contiguous();
  return {copy, *x_geometry(copy)};
}

// The biases as every epilogue takes them, read where they lie: bias's element n at bias + n * bias_stride (0 for
// one value shared by every channel, check_bias_shape), conv_bias contiguous or none. Flattening bias with reshape
// had cost two dispatcher calls per forward, 4-5 us of the H200 host's time per call (docs/limits.md §46).
struct BiasOperands {
  const void* bias;
  int64_t bias_stride;
  c10::optional<at::Tensor> conv;
  const void* conv_ptr() const { return conv.has_value() ? conv->data_ptr() : nullptr; }
};

BiasOperands bias_operands(const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias) {
  BiasOperands b{bias.data_ptr(), 0, c10::nullopt};
  if (bias.numel() > 1) {  // one dimension holds the C_out values, every other has size 1
    for (int64_t d = 0; d < bias.dim(); ++d) {
      if (bias.size(d) != 1) b.bias_stride = bias.stride(d);
    }
  }
  if (conv_bias.has_value()) b.conv = conv_bias->contiguous();
  return b;
}

// The fused strategy: one launch per batch range reads x and runs the epilogue (forward.cu).
void forward_fused(const at::Tensor& x_in, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
                   const at::Tensor& bias, const ForwardShape& s, at::Tensor& out, at::Tensor& sums,
                   cudaStream_t stream) {
  auto [x, geometry] = readable_x(x_in);
  const at::Tensor weight_c = weight.contiguous();
  const BiasOperands biases = bias_operands(conv_bias, bias);
  const int64_t acc_bytes = sums.element_size();
  const int64_t budget_values =
      workspace_budget_bytes(x_in.nbytes() + weight.nbytes()) / acc_bytes;
  const int64_t launch_batches = batches_per_launch(s.batch, s.in_channels, s.out_channels, budget_values);
  // Each batch range is one launch, in stream order: the next one's scratch may reuse this one's memory.
  for (int64_t b0 = 0; b0 < s.batch; b0 += launch_batches) {
    const int64_t nb = std::min(launch_batches, s.batch - b0);
    const at::Tensor x_part = nb == s.batch ? x : x.narrow(0, b0, nb);
    std::optional<Scratch> scratch;
    FusedArgs a = make_fused_args(x_part, geometry, Mode::kForward, s.out_channels, s.kernel_h * s.kernel_w,
                                  budget_values, scratch, stream);
    a.sums = static_cast<char*>(sums.data_ptr()) + b0 * s.in_channels * acc_bytes;
    if (a.plan.splits == 1) a.partials = a.sums;
    a.weight = weight_c.data_ptr();
    a.groups = s.conv.groups;
    a.conv_bias = biases.conv_ptr();
    a.bias = biases.bias;
    a.bias_stride = biases.bias_stride;
    a.scale = s.scale;
    a.out = static_cast<char*>(out.data_ptr()) + b0 * out.element_size();
    C10_CUDA_CHECK(launch_fused(a, stream));
  }
}

bool reads_as_plane_runs(const at::Tensor& x);

// Whether every (b, c) plane of x starts on a 16-byte boundary: x's first element, and its batch and channel strides
// (not those of a dimension of size 1, which are never used). plan::Problem::planes_aligned, and where the
// plane-lanes reader needs no inner-vector walk.
bool planes_start_aligned(const at::Tensor& x) {
  const int64_t elem = x.element_size();
  return reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 && (x.size(0) == 1 || x.stride(0) * elem % 16 == 0) &&
         (x.size(1) == 1 || x.stride(1) * elem % 16 == 0);
}

// The planner's view of x and the weight: sizes, element size, layout, taps per weight pair, plane runs, planes
// aligned, pixels that follow each other, and as whole aligned 16-byte vectors.
plan::Problem problem_of(const at::Tensor& x, int64_t out_channels, int64_t kernel_area) {
  plan::Layout layout = plan::Layout::kOther;
  bool planes_aligned = false, pixels_follow = false, pixel_vectors = false;
  if (auto g = x_geometry(x)) {
    layout = g->layout == XLayout::kRows ? plan::Layout::kPlanes : plan::Layout::kChannelsLast;
    planes_aligned = layout == plan::Layout::kPlanes && planes_start_aligned(x);
    pixels_follow = layout == plan::Layout::kChannelsLast && g->stride_p == x.size(1);
    const int64_t bytes = x.element_size();
    pixel_vectors = pixels_follow && x.size(1) * bytes % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 == 0 &&
                    (x.size(0) == 1 || g->stride_b * bytes % 16 == 0);
  } else if (x.size(3) == 1 || x.stride(3) == 1) {
    layout = plan::Layout::kStridedRows;
  }
  return plan::Problem{x.size(0), x.size(1), out_channels, x.size(2), x.size(3), x.element_size(), layout,
                       kernel_area, reads_as_plane_runs(x), planes_aligned, pixels_follow, pixel_vectors};
}

// Blocks of the split kernels (kSplitThreads each) that fit on the device at once: their grid-stride loops need no
// more.
int64_t resident_split_blocks(int device) {
  const plan::DeviceProps props = device_props(device);
  return props.multiprocessors * std::max<int64_t>(1, props.warps_per_sm * 32 / kSplitThreads);
}

// Blocks of the plane-lanes kernel `a` selects that fit on `device` at once, read once per device and kernel: a
// persistent grid's most (PlaneLanesTiling::persistent; its grid-stride loop needs no more: a second wave would start
// late and take as many turns as the first).
int64_t plane_lanes_blocks(const PlaneLanesArgs& a, int device) {
  const auto key = std::make_tuple(device, static_cast<int>(a.kind), a.lanes, a.vec, a.height == 1);
  return once_per_key(key, [&] { return device_props(device).multiprocessors * plane_lanes_blocks_per_sm(a); });
}

void add_pieces(const at::Tensor& partials, int64_t planes, int64_t pieces, const at::Tensor& out,
                int64_t resident_threads, cudaStream_t stream);

// Blocks of kSplitThreads that give every pair of `fold` a thread (0 without a fold): a reader's grid is at least
// this large (at most what fits on the device), so a reader of few items still folds the weight on many threads.
int64_t fold_blocks(const WeightFold& fold) { return fold.weight ? ceil_div(fold.pairs, kSplitThreads) : 0; }

// The fold of W.sum((2, 3)) into weight_sum [C_in, C_out] that a reader's launch can take on (WeightFold): an
// ungrouped, contiguous weight of at most kReaderFoldMaxWeightBytes; none (weight null) otherwise, and then the
// caller sums it with a launch of its own. Not grouped weights: the grouped sum's 64-bit divisions, compiled into the
// channel-rows reader, raised its registers from 32-48 to 46-62 (ptxas, sm_90) and slowed r36 and r38 of the sweep,
// which have no groups, by 5-6% (H200, docs/limits.md §41).
WeightFold reader_weight_fold(const at::Tensor& weight, int64_t groups, const at::Tensor& weight_sum) {
  WeightFold fold{};
  if (groups != 1 || !weight.is_contiguous() || weight.nbytes() > kReaderFoldMaxWeightBytes || weight.numel() == 0) {
    return fold;
  }
  fold.weight = weight.data_ptr();
  fold.out = weight_sum.data_ptr();
  fold.pairs = weight_sum.numel();
  fold.taps = weight.size(2) * weight.size(3);
  return fold;
}

// The most aligned 16-byte vectors a plane of `a`'s masked-vector walk touches (PlaneLanesArgs: rows of height > 1,
// vec > 1): its span of elements, starting anywhere in a vector.
int64_t masked_vectors(const PlaneLanesArgs& a) {
  const int64_t span = (a.height - 1) * a.stride_h + a.width;
  return (a.vec - 1 + span + a.vec - 1) / a.vec;
}

// out [planes] = the sum of each plane's elements by the plane-lanes reader (split.cu), `a` filled but for its sizing
// and output. Planes cut into pieces are added up by the reader's blocks (PlaneLanesTiling::pieces_in_block), or
// leave [planes, pieces] partial sums, which add_pieces then adds up.
void run_plane_lanes(PlaneLanesArgs a, const at::Tensor& out, int64_t resident_threads, cudaStream_t stream) {
  const int64_t planes = a.batch * a.channels;
  const int64_t units = a.vec == 1      ? a.height * a.width
                        : a.height == 1 ? a.width / a.vec
                                        : masked_vectors(a);
  const bool neighbour_loads = a.vec > 1 ? a.height > 1 : a.stride_w == 1;  // the masked walk, rows of stride 1
  plan::PlaneLanesTiling tiling = plan::plane_lanes_tiling(
      planes, units, resident_threads, neighbour_loads ? kPlaneLanesNeighbourUnitsPerLane : kPlaneLanesUnitsPerLane);
  a.lanes = tiling.lanes;  // which kernel, so how many of its blocks a device holds at once
  tiling = plan::fit_pieces_to_wave(tiling, planes, units, plane_lanes_blocks(a, out.get_device()));
  a.pieces = tiling.pieces;
  a.pieces_in_block = tiling.pieces_in_block;
  a.piece_units = tiling.piece_units;
  a.blocks = tiling.persistent ? std::min<int64_t>(tiling.blocks, plane_lanes_blocks(a, out.get_device()))
                                : tiling.blocks;
  at::Tensor partials;
  const bool partial_sums = a.pieces > 1 && !a.pieces_in_block;
  if (partial_sums) partials = at::empty({planes * a.pieces}, out.options());
  a.out = partial_sums ? partials.data_ptr() : out.data_ptr();
  C10_CUDA_CHECK(launch_plane_lanes(a, stream));
  if (partial_sums) add_pieces(partials, planes, a.pieces, out, resident_threads, stream);
}

// out [planes] = the sum of each plane's `pieces` partial sums (partials [planes, pieces], contiguous, accumulation
// type, as out), added in order by the plane-lanes reader: planes of `pieces` contiguous elements.
void add_pieces(const at::Tensor& partials, int64_t planes, int64_t pieces, const at::Tensor& out,
                int64_t resident_threads, cudaStream_t stream) {
  PlaneLanesArgs add{};
  add.kind = kind_of(out.scalar_type());
  add.x = partials.data_ptr();
  add.batch = planes;
  add.channels = 1;
  add.height = 1;
  add.width = pieces;
  add.stride_b = pieces;
  add.stride_w = 1;
  add.vec = 1;
  run_plane_lanes(add, out, resident_threads, stream);
}

// sums [B, C] = x.sum((2, 3)) of channels-last x by the channel-rows reader (split.cu), in place, and `fold` by the
// same launch: by its pixel-vector walk where plan::pixel_vectors_walk, else by its vector walk where
// plan::channel_vectors_apply, else by its scalar walk. False, and nothing queued, where x's channels are not
// adjacent with its pixels on one stride (x_geometry), or where the scalar walk would take more channels than it can.
// `beside_previous` (no fold then): it runs beside the grid ahead, as read_sums'.
bool read_channel_rows(const at::Tensor& x, at::Tensor& sums, const WeightFold& fold, cudaStream_t stream,
                       bool beside_previous = false) {
  TORCH_INTERNAL_ASSERT(!beside_previous || fold.weight == nullptr, "read_channel_rows: a fold waits for nothing");
  const auto geometry = x_geometry(x);
  if (!geometry || geometry->layout != XLayout::kChannelsLast) return false;
  const int64_t vector_elements = 16 / x.element_size();
  const plan::Problem problem = problem_of(x, 1, 1);
  // The sums are ours, whole 16-byte vectors per batch where the pixels are (C a multiple of a vector).
  const bool pixel_vectors =
      plan::pixel_vectors_walk(problem) && reinterpret_cast<uintptr_t>(sums.data_ptr()) % 16 == 0;
  const plan::ChannelVectorsPeriod period =
      !pixel_vectors && plan::channel_vectors_apply(problem)
          ? plan::channel_vectors_period(x.size(1), vector_elements, sums.element_size())
          : plan::ChannelVectorsPeriod{};
  if (!pixel_vectors && period.period_vectors == 0 && x.size(1) > kSplitThreads * kChannelRowsWideLoads) return false;
  ChannelRowsArgs a{};
  a.kind = kind_of(x.scalar_type());
  a.x = x.data_ptr();
  a.batch = x.size(0);
  a.channels = x.size(1);
  a.pixels = x.size(2) * x.size(3);
  a.stride_b = a.batch > 1 ? geometry->stride_b : 0;
  a.stride_p = geometry->stride_p;
  a.period_vectors = period.period_vectors;
  a.copies = period.copies;
  a.pixel_vectors = pixel_vectors;
  a.pixel_chunks = pixel_vectors && plan::pixel_vectors_chunked(a.pixels);
  a.shared_bytes = period.shared_bytes;
  const int device = x.get_device();
  const plan::DeviceProps props = device_props(device);
  a.evict_first = loads_evict_first(x, props);
  const auto key = std::make_tuple(device, static_cast<int>(a.kind), a.channels > kSplitThreads, a.shared_bytes,
                                   pixel_vectors, a.pixel_chunks);
  const int64_t resident = props.multiprocessors * once_per_key(key, [&] { return channel_rows_blocks_per_sm(a); });
  const plan::ChannelRowsTiling tiling =
      pixel_vectors ? plan::pixel_vectors_tiling(a.batch, a.channels, a.pixels, vector_elements, resident)
      : a.period_vectors > 0 ? plan::channel_vectors_tiling(a.batch, a.channels, a.pixels, vector_elements,
                                                            a.period_vectors * a.copies, resident)
                             : plan::channel_rows_tiling(a.batch, a.channels, a.pixels, resident);
  a.rows_per_step = tiling.rows_per_step;
  a.chunks = tiling.chunks;
  TORCH_INTERNAL_ASSERT(!a.pixel_chunks || a.batch * a.chunks * (a.channels / vector_elements) < (int64_t{1} << 31),
                        "read_channel_rows: the chunked pixel-vector walk's items take 32-bit indices");
  a.chunk_pixels = tiling.chunk_pixels;
  a.blocks = std::min(std::max(tiling.blocks, fold_blocks(fold)), std::max<int64_t>(resident, 1));
  a.fold = fold;
  a.beside_previous = beside_previous;
  at::Tensor partials;
  if (a.chunks > 1) partials = at::empty({a.batch * a.channels * a.chunks}, sums.options());
  a.out = a.chunks > 1 ? partials.data_ptr() : sums.data_ptr();
  C10_CUDA_CHECK(launch_channel_rows(a, stream));
  if (a.chunks > 1) {
    add_pieces(partials, a.batch * a.channels, a.chunks, sums, plan::resident_threads(props), stream);
  }
  return true;
}

// Whether rows of `width` elements of `element_bytes`, `row_stride` elements apart, leave gaps between them shorter
// than a DRAM sector: the aligned 16-byte vectors around them then hold no byte DRAM would not fetch anyway.
bool row_gaps_under_a_sector(int64_t row_stride, int64_t width, int64_t element_bytes) {
  return row_stride >= width && (row_stride - width) * element_bytes < kMaskedVectorsMaxGapBytes;
}

// Whether the plane-lanes reader takes `a`'s planes (read_plane_lanes' form of x) by the masked-vector walk: planes
// of strided rows (or of one strided row), whose gaps are shorter than a DRAM sector, so that the aligned vectors
// around every plane hold no byte DRAM would not fetch anyway. The scalar walk gives small planes one lane each, and
// each load a sector per lane, and large ones a load of 2 to 8 bytes per lane; below kMaskedVectorsMinElements a
// plane's few scalar loads cost less than the masked walk's per-plane setup, and past kMaskedColumnMaxElements
// elements of one strided row (a column) the scalar walk's 32 lanes cost less than vectors of which the plane holds
// a third or less (tuning.h). The vectors may reach up to 15 bytes before x's first element or past its last,
// outside its storage: such a load cannot fault (its 16 aligned bytes share a page with an element of x), and the
// walk adds none of those bytes.
bool masked_vectors_suit(const PlaneLanesArgs& a, int64_t element_bytes) {
  const bool one_strided_row = a.height == 1 && a.stride_w > 1;
  const int64_t row_stride = one_strided_row ? a.stride_w : a.stride_h;
  const int64_t row_width = one_strided_row ? 1 : a.width;
  if (!(one_strided_row || (a.height > 1 && a.stride_w == 1))) return false;
  const int64_t elements = a.height * a.width;
  return elements >= kMaskedVectorsMinElements && (!one_strided_row || elements <= kMaskedColumnMaxElements) &&
         row_gaps_under_a_sector(row_stride, row_width, element_bytes);  // rows that do not overlap, narrow gaps
}

// The run walk's view of `a`'s planes (read_plane_lanes' form of x), where they are contiguous, of at most
// kPlaneRunsMaxElements elements, and follow each other in runs of at least kPlaneRunsMinRunBytes: every plane of x
// (one run), or each batch's channels; none where plan::tiny_plane_walk gives such planes to the plane-lanes reader's
// lanes (vector_plane set where it sums them whole per vector, staged where the staged walk reads them). The walks
// load the aligned 16-byte vectors around each item, which may reach up to 15 bytes before x's first element or past
// its last, outside its storage: such a load cannot fault (its 16 aligned bytes share a page with an element of x),
// and the walks add none of those bytes.
std::optional<PlaneRunsArgs> plane_runs_of(const PlaneLanesArgs& a, int64_t element_bytes) {
  if (a.height != 1 || a.stride_w != 1 || a.width > kPlaneRunsMaxElements) return std::nullopt;
  PlaneRunsArgs r{};
  r.kind = a.kind;
  r.x = a.x;
  r.evict_first = a.evict_first;
  r.plane = a.width;
  if (a.channels == 1 && (a.batch == 1 || a.stride_b == a.width)) {
    r.runs = 1;
    r.run_planes = a.batch;
  } else if (a.channels > 1 && a.stride_c == a.width) {
    r.runs = a.batch;
    r.run_planes = a.channels;
    r.stride_run = a.stride_b;
  } else {
    return std::nullopt;
  }
  if (r.run_planes * r.plane * element_bytes < kPlaneRunsMinRunBytes) return std::nullopt;
  // Planes of 1, 2, 4 or 8 elements (16 bytes at most) whose every plane starts a multiple of its bytes from an
  // aligned address never straddle a 16-byte vector.
  const int64_t plane_bytes = r.plane * element_bytes;
  const bool power_of_two = r.plane == 1 || r.plane == 2 || r.plane == 4 || r.plane == 8;
  const bool tiles_vectors = power_of_two && plane_bytes <= 16 &&
                             reinterpret_cast<uintptr_t>(r.x) % plane_bytes == 0 &&
                             (r.stride_run * element_bytes) % plane_bytes == 0;
  switch (plan::tiny_plane_walk(r.plane, element_bytes, r.run_planes, tiles_vectors)) {
    case plan::TinyPlaneWalk::kLanes: return std::nullopt;
    case plan::TinyPlaneWalk::kRuns: break;
    case plan::TinyPlaneWalk::kVectorPlanes: r.vector_plane = static_cast<int>(r.plane); break;
    case plan::TinyPlaneWalk::kStaged: r.staged = true; break;
  }
  return r;
}

// out [runs x run_planes] = each plane's sum by the run walk (split.cu), `r` filled but for its sizing and output.
void run_plane_runs(PlaneRunsArgs r, const at::Tensor& out, int64_t element_bytes, const plan::DeviceProps& props,
                    cudaStream_t stream) {
  const int device = out.get_device();
  const plan::TinyPlaneWalk walk = r.staged             ? plan::TinyPlaneWalk::kStaged
                                   : r.vector_plane > 0 ? plan::TinyPlaneWalk::kVectorPlanes
                                                        : plan::TinyPlaneWalk::kRuns;
  const plan::PlaneRunsTiling tiling =
      plan::plane_runs_tiling(r.runs, r.run_planes, r.plane, element_bytes, walk, plan::resident_threads(props));
  r.item_planes = tiling.item_planes;
  r.run_items = tiling.run_items;
  // Resident blocks depend on the shared memory: the staged sums' (item_planes), or the staged walk's tiles (plane).
  const auto key = std::make_tuple(device, static_cast<int>(r.kind), r.item_planes, r.vector_plane,
                                   r.staged ? r.plane : int64_t{0});
  const int64_t resident = props.multiprocessors * once_per_key(key, [&] { return plane_runs_blocks_per_sm(r); });
  r.blocks = std::min(tiling.blocks, std::max<int64_t>(resident, 1));
  r.out = out.data_ptr();
  C10_CUDA_CHECK(launch_plane_runs(r, stream));
}

// x's planes as the plane-lanes reader sees them (PlaneLanesArgs, but its walk, sizing and output): a plane whose
// rows follow each other (one row, one column, or rows `width` elements apart) is one row; planes evenly spaced
// are one batch of planes. None for planes that reach 2^30 elements or more from their first (4 GiB of float32 in
// one plane): the kernel's offsets within a plane are 32-bit.
std::optional<PlaneLanesArgs> plane_lanes_form(const at::Tensor& x) {
  PlaneLanesArgs a{};
  a.kind = kind_of(x.scalar_type());
  a.x = x.data_ptr();
  a.batch = x.size(0);
  a.channels = x.size(1);
  a.height = x.size(2);
  a.width = x.size(3);
  // The stride of a dimension of size 1 is never used: 0, so that it does not stand in the way of 16-byte loads.
  a.stride_b = a.batch > 1 ? x.stride(0) : 0;
  a.stride_c = a.channels > 1 ? x.stride(1) : 0;
  a.stride_h = x.stride(2);
  a.stride_w = x.stride(3);
  if (a.width == 1) {
    a.width = a.height;
    a.stride_w = a.stride_h;
    a.height = 1;
  } else if (a.height == 1 || a.stride_h == a.width * a.stride_w) {
    a.width *= a.height;
    a.height = 1;
  }
  a.stride_h = a.height > 1 ? a.stride_h : a.width * a.stride_w;
  // The kernel's offsets within a plane are 32-bit, and a lane's last step may pass the plane's end by a row or so:
  // half the range.
  constexpr int64_t kMaxReach = int64_t{1} << 30;
  if ((a.height - 1) * a.stride_h + (a.width - 1) * a.stride_w >= kMaxReach || a.height * a.width >= kMaxReach) {
    return std::nullopt;
  }
  if (a.batch == 1 || a.stride_b == a.channels * a.stride_c) {  // planes evenly spaced: one index, no division
    a.stride_b = a.stride_c;
    a.batch *= a.channels;
    a.channels = 1;
  }
  return a;
}

// Whether the plane-lanes reader would read x's planes by the run walk (plan::Problem::plane_runs).
bool reads_as_plane_runs(const at::Tensor& x) {
  const auto form = plane_lanes_form(x);
  return form && plane_runs_of(*form, x.element_size()).has_value();
}

// sums [B, C] = x.sum((2, 3)) by the plane-lanes reader, in place (plane_lanes_form): tiny planes that follow each
// other by the run walk; contiguous planes loaded 16 bytes at a time (from each one's first aligned vector where
// they start inside one); planes of strided rows by the masked-vector walk; others by the scalar walks. False,
// and nothing queued, where plane_lanes_form has none. `beside_previous`: its first launch runs beside the grid ahead
// (launch.cuh).
bool read_plane_lanes(const at::Tensor& x, at::Tensor& sums, cudaStream_t stream, bool beside_previous) {
  const auto form = plane_lanes_form(x);
  if (!form) return false;
  const plan::DeviceProps props = device_props(x.get_device());
  PlaneLanesArgs a = *form;
  a.beside_previous = beside_previous;
  a.evict_first = loads_evict_first(x, props);
  if (auto runs = plane_runs_of(a, x.element_size())) {
    runs->beside_previous = beside_previous;
    run_plane_runs(*runs, sums, x.element_size(), props, stream);
    return true;
  }
  // 16-byte loads only where a row holds enough of them for the smallest group of several lanes; shorter rows take
  // the scalar walk. Planes that start inside a vector take its inner-vector walk where they are long enough
  // (kInnerVectorsMinElements).
  const int64_t vec = 16 / x.element_size();
  const uintptr_t address = reinterpret_cast<uintptr_t>(x.data_ptr());
  const bool one_row = a.height == 1 && a.stride_w == 1 &&
                       a.width >= vec * kPlaneLanesGroups[0] * kPlaneLanesUnitsPerLane;
  const bool aligned = planes_start_aligned(x);
  const bool vectors = one_row && (aligned || (a.width >= kInnerVectorsMinElements && address % x.element_size() == 0));
  a.vec = vectors ? static_cast<int>(vec) : 1;
  a.inner_vectors = vectors && !aligned;
  if (!vectors && masked_vectors_suit(a, x.element_size())) {
    if (a.height == 1) {  // one row of elements stride_w apart: rows of one element
      a.height = a.width;
      a.width = 1;
      a.stride_h = a.stride_w;
      a.stride_w = 1;
    }
    a.vec = static_cast<int>(vec);
  }
  run_plane_lanes(a, sums, plan::resident_threads(props), stream);
  return true;
}

// sums [B, C] (accumulation type, contiguous) = x.sum((2, 3)), by `reader`. True where the reader's launch also did
// `fold` (the channel-rows reader, given a fold with a weight); otherwise the fold, if any, is the caller's.
// `beside_previous`: the plane-lanes reader's first launch, or the channel-rows reader's (given no fold), may run
// beside the grid ahead of it, which must be one of ours, and write nothing x's reader touches (launch.cuh); other
// readers wait for it.
bool read_sums(const at::Tensor& x_in, plan::Reader reader, at::Tensor& sums, cudaStream_t stream,
               const WeightFold& fold = {}, bool beside_previous = false) {
  if (sums.numel() == 0) return false;
  if (x_in.size(2) * x_in.size(3) == 0) {
    sums.zero_();
    return false;
  }
  switch (reader) {
    case plan::Reader::kPlaneLanes:
      if (read_plane_lanes(x_in, sums, stream, beside_previous)) return false;
      break;  // planes too far-reaching for it: torch's reduction
    case plan::Reader::kChannelRows:
      if (read_channel_rows(x_in, sums, fold, stream, beside_previous)) return fold.weight != nullptr;
      break;  // not channels-last, or too many channels: torch's reduction
    case plan::Reader::kTorchSum:
    case plan::Reader::kInEpilogue:  // the forward's epilogue reads x itself (forward_split): torch's reduction here
      break;
    case plan::Reader::kPlanes:
    case plan::Reader::kCopyThenPlanes: {
      auto [x, geometry] = readable_x(x_in);
      std::optional<Scratch> scratch;
      FusedArgs a = make_fused_args(x, geometry, Mode::kSumsOnly, 1, 1, 0, scratch, stream);
      a.sums = sums.data_ptr();
      if (a.plan.splits == 1) a.partials = a.sums;
      C10_CUDA_CHECK(launch_fused(a, stream));
      return false;
    }
  }
  at::sum_out(sums, x_in, {2, 3}, /*keepdim=*/false, sums.scalar_type());
  return false;
}

// out = a @ b (out contiguous, of a's rows and b's columns) in float32 (or float64) accuracy whatever torch's TF32
// setting: with TF32 allowed, cuBLAS would round each factor to 10 mantissa bits (relative error ~1e-3). Then both
// are split into a part TF32 holds exactly and the rest, and the three products that matter are added, smallest
// first (3xTF32: float32 accuracy on tensor cores).
void exact_mm_out(at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != at::kFloat || !at::globalContext().allowTF32CuBLAS()) {
    at::mm_out(out, a, b);
    return;
  }
  constexpr int32_t kTf32Mask = ~((1 << 13) - 1);  // keeps the sign, the exponent and 10 mantissa bits
  const auto high = [](const at::Tensor& t) { return t.view(at::kInt).bitwise_and(kTf32Mask).view(at::kFloat); };
  const at::Tensor a_high = high(a), b_high = high(b);
  const at::Tensor a_low = a - a_high, b_low = b - b_high;
  at::addmm_out(out, at::addmm(at::mm(a_low, b_high), a_high, b_low), a_high, b_high);
}

// A tensor of `sizes` (contiguous, or at `strides` where given) over `data` (memory the caller keeps alive), of
// `options`' dtype and device: no dispatcher call, and no query of the pointer's device (given, where from_blob
// alone would ask CUDA).
at::Tensor tensor_over(void* data, at::IntArrayRef sizes, const at::TensorOptions& options,
                       at::IntArrayRef strides = {}) {
  auto maker = at::for_blob(data, sizes);
  if (!strides.empty()) maker.strides(strides);
  return maker.options(options).target_device(options.device()).make_tensor();
}

// Whether cuBLAS's GEMM of `rows` x `channels` sums by W.sum [channels, c_out] for output `kind` on `device` runs on
// bfloat16 tensor cores over pieces of its factors (Bf16PiecesArgs; bf16_pieces_mm_out), as plan::bf16_pieces_apply
// rules: 16-bit output, whose own rounding (2^-12 to 2^-9 of it) is far above the pieces' 2^-16 of |a| @ |b| (float32
// output keeps SGEMM: float32 accumulation on the tensor cores leaves about 3e-6 of |a| @ |b|, 50x SGEMM's).
bool gemm_by_bf16_pieces(ScalarKind kind, int64_t rows, int64_t channels, int64_t c_out, int device) {
  return plan::bf16_pieces_apply(element_bytes_of(kind), rows, channels, c_out, device_props(device));
}

// The pieces' layout (Bf16PiecesArgs) for sums [rows, channels] x W.sum [channels, c_out]: the shared dimension
// rounded up to whole 16-byte rows of bfloat16, the right factor's row stride likewise, and the bytes of the left
// factor's pieces per row and of the right factor's.
struct Bf16PiecesSizes {
  int64_t depth, right_stride, left_row_bytes, right_bytes;
};
Bf16PiecesSizes bf16_pieces_sizes(int64_t channels, int64_t c_out) {
  constexpr int64_t kBf16Bytes = 2;
  const int64_t depth = bf16_pieces_rounded(channels);
  const int64_t right_stride = bf16_pieces_rounded(c_out);
  return {depth, right_stride, kBf16PieceSlots * depth * kBf16Bytes,
          kBf16PieceSlots * depth * right_stride * kBf16Bytes};
}

// out = a @ b (a [rows, channels], b [channels, c_out]: float32, contiguous; out [rows, c_out] float32 at the row
// stride bf16_pieces_sizes' right_stride) by one bfloat16 GEMM with float32 output over their pieces
// (gemm_by_bf16_pieces). a's pieces go into left_pieces (rows x left_row_bytes), b's into right_pieces (right_bytes),
// each by a launch of the pieces kernel; b's only where !right_written (a call's later batch ranges find them
// written). The GEMM runs over whole rows of right_stride columns, b's pieces zero past c_out, and so writes out's
// padding too: for 3996 columns cuBLAS took an sm_80 kernel at a third of the speed of the sm_90 kernels it takes for
// 4000 (docs/limits.md section 104).
void bf16_pieces_mm_out(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, void* left_pieces,
                        void* right_pieces, bool right_written, cudaStream_t stream) {
  const int64_t rows = a.size(0), channels = a.size(1), c_out = b.size(1);
  const Bf16PiecesSizes sizes = bf16_pieces_sizes(channels, c_out);
  TORCH_INTERNAL_ASSERT(out.stride(0) == sizes.right_stride && out.stride(1) == 1,
                        "bf16_pieces_mm_out: out's rows must be right_stride apart");
  const int64_t max_blocks = resident_split_blocks(a.get_device());
  const Bf16PiecesArgs left{a.data_ptr<float>(), left_pieces, rows, channels, sizes.depth,
                            kBf16PieceSlots * sizes.depth, /*along_columns=*/true};
  C10_CUDA_CHECK(launch_bf16_pieces(left, max_blocks, stream));
  if (!right_written) {
    const Bf16PiecesArgs right{b.data_ptr<float>(), right_pieces, channels, c_out, sizes.depth, sizes.right_stride,
                               /*along_columns=*/false};
    C10_CUDA_CHECK(launch_bf16_pieces(right, max_blocks, stream));
  }
  const auto bf16 = a.options().dtype(at::kBFloat16);
  const int64_t slots_depth = kBf16PieceSlots * sizes.depth;
  at::Tensor whole_rows = tensor_over(out.data_ptr(), {rows, sizes.right_stride}, out.options());
  at::mm_out(whole_rows, tensor_over(left_pieces, {rows, slots_depth}, bf16),
             tensor_over(right_pieces, {slots_depth, sizes.right_stride}, bf16), at::kFloat);
}

// The GEMM + logsumexp's operands for out [B] (in `kind`) = 10 x logsumexp(scale x sums @ weight_sum + conv_bias +
// bias). sums [B, C_in] and weight_sum [C_in, C_out]: contiguous, accumulation type; conv_bias: [C_out] contiguous
// or null; bias: C_out values at bias_stride (0: one for all).
GemmLseArgs gemm_lse_operands(const at::Tensor& sums, const at::Tensor& weight_sum, const void* conv_bias,
                              const void* bias, int64_t bias_stride, ScalarKind kind, double scale, void* out) {
  GemmLseArgs a{};
  a.kind = kind;
  a.sums = sums.data_ptr();
  a.weight_sum = weight_sum.data_ptr();
  a.conv_bias = conv_bias;
  a.bias = bias;
  a.bias_stride = bias_stride;
  a.out = out;
  a.batch = sums.size(0);
  a.channels = sums.size(1);
  a.c_out = weight_sum.size(1);
  a.scale = scale;
  return a;
}

// A BiasLseArgs with the fields every logsumexp launch fills alike: out [batch] (in `kind`) = 10 x logsumexp over
// c_out columns of scale x logits + conv_bias + bias (gemm_lse_operands' conventions); the caller names the logits.
BiasLseArgs lse_output_args(ScalarKind kind, const void* conv_bias, const void* bias, int64_t bias_stride, void* out,
                            int64_t batch, int64_t c_out, double scale) {
  BiasLseArgs a{};
  a.kind = kind;
  a.conv_bias = conv_bias;
  a.bias = bias;
  a.bias_stride = bias_stride;
  a.out = out;
  a.batch = batch;
  a.c_out = c_out;
  a.row_stride = c_out;
  a.scale = scale;
  return a;
}

// out [B] (in `kind`) = 10 x logsumexp(scale x logits + conv_bias + bias), the logits split-K's partial ones,
// `partials` [splits, B, C_out] of the accumulation type, added in split order (bitwise the same every run).
void split_logits_lse(const void* partials, int64_t splits, int64_t batch, int64_t c_out, ScalarKind kind,
                      const void* conv_bias, const void* bias, int64_t bias_stride, double scale, void* out,
                      int64_t max_blocks, cudaStream_t stream) {
  BiasLseArgs lse = lse_output_args(kind, conv_bias, bias, bias_stride, out, batch, c_out, scale);
  lse.logits = partials;
  lse.channels = 1;
  lse.slices = 1;
  lse.splits = splits;
  C10_CUDA_CHECK(launch_bias_lse(lse, max_blocks, stream));
}

// The tiled epilogue's tiling of a [batch, channels] x [channels, c_out] GEMM of acc_bytes values for output `kind`
// on `device` (16-bit output may take the bfloat16 tensor-core tile: plan::bf16_tile_applies), and
// the bytes of its workspace: its k splits' partial logits [k_splits, batch, c_out], or its column runs' partial
// logsumexps [column_runs, batch, 2]; none for one run of one split; then for the bfloat16 tensor-core tile W.sum's
// pieces and the columns' biases (tuning.h, bf16_mma_weight_bytes) at the next 16 bytes (uint4 loads).
struct TiledEpilogue {
  plan::GemmTiling tiling;
  int64_t workspace_bytes;
  int64_t weight_offset = 0;  // of the bfloat16 tile's W.sum pieces
};

TiledEpilogue tiled_epilogue(ScalarKind kind, int64_t batch, int64_t channels, int64_t c_out, int64_t acc_bytes,
                             int device) {
  const plan::DeviceProps props = device_props(device);
  const bool bf16_tile = plan::bf16_tile_applies(element_bytes_of(kind), props);
  TiledEpilogue t{plan::gemm_tiling(batch, channels, c_out, acc_bytes, props.multiprocessors,
                                    props.shared_bytes_per_sm, bf16_tile),
                  0};
  if (t.tiling.k_splits > 1) {
    t.workspace_bytes = t.tiling.k_splits * batch * c_out * acc_bytes;
  } else if (t.tiling.column_runs > 1) {
    t.workspace_bytes = t.tiling.column_runs * batch * 2 * acc_bytes;
  }
  if (t.tiling.tile == kBf16MmaTile) {
    t.weight_offset = (t.workspace_bytes + 15) / 16 * 16;
    t.workspace_bytes = t.weight_offset + bf16_mma_weight_bytes(channels, c_out);
  }
  return t;
}

// out = gemm_lse_operands' by the tiled GEMM + logsumexp; `workspace`: tiled_epilogue's bytes on `device`.
void tiled_gemm_lse(GemmLseArgs a, int64_t acc_bytes, int device, void* workspace, cudaStream_t stream) {
  const TiledEpilogue epilogue = tiled_epilogue(a.kind, a.batch, a.channels, a.c_out, acc_bytes, device);
  const plan::GemmTiling& tiling = epilogue.tiling;
  a.tile = tiling.tile;
  if (tiling.tile == kBf16MmaTile) {
    a.weight_fragments = static_cast<char*>(workspace) + epilogue.weight_offset;
    a.column_biases = static_cast<char*>(a.weight_fragments) + bf16_mma_fragment_bytes(a.channels, a.c_out);
  }
  a.column_runs = tiling.column_runs;
  a.k_splits = tiling.k_splits;
  a.split_channels = tiling.split_channels;
  if (a.k_splits > 1) {
    a.partial_logits = workspace;
  } else if (a.column_runs > 1) {
    a.partial_lse = workspace;
  }
  C10_CUDA_CHECK(launch_gemm_lse(a, stream));
  if (a.k_splits > 1) {
    split_logits_lse(a.partial_logits, a.k_splits, a.batch, a.c_out, a.kind, a.conv_bias, a.bias, a.bias_stride,
                     a.scale, a.out, resident_split_blocks(device), stream);
  }
}

// out = gemm_lse_operands' by the rows epilogue (plan::rows_lse_applies must hold), sized by plan::rows_lse_tiling.
void rows_gemm_lse(const GemmLseArgs& a, const at::Tensor& sums, cudaStream_t stream) {
  const int device = sums.get_device();
  const plan::DeviceProps props = device_props(device);
  const plan::RowsLseTiling tiling =
      plan::rows_lse_tiling(a.batch, a.channels, a.c_out, sums.element_size(), plan::resident_threads(props));
  const auto key = std::make_tuple(device, static_cast<int>(a.kind), tiling.lanes, tiling.shared_bytes);
  const int blocks_per_sm =
      once_per_key(key, [&] { return rows_lse_blocks_per_sm(a.kind, tiling.lanes, tiling.shared_bytes); });
  const int64_t max_blocks = props.multiprocessors * blocks_per_sm;
  C10_CUDA_CHECK(launch_rows_lse(a, tiling.lanes, tiling.shared_bytes, max_blocks, stream));
}

// The narrow epilogue's tiling of a [batch, channels] x [channels, c_out] GEMM of acc_bytes values on `device`.
plan::NarrowLseTiling narrow_tiling(int64_t batch, int64_t channels, int64_t c_out, int64_t acc_bytes, int device) {
  return plan::narrow_lse_tiling(batch, channels, c_out, acc_bytes, plan::resident_threads(device_props(device)));
}

// out = gemm_lse_operands' by the narrow epilogue (plan::narrow_lse_applies must hold), sized by
// plan::narrow_lse_tiling; over channel ranges (split-K) its partial logits go to `workspace`
// (epilogue_workspace_bytes) and bias_lse adds them up. With a.plane_rows > 0, `a.sums` is x, whose planes the kernel
// sums itself (plan::narrow_reads_planes checked that one range takes the channels) or, of one element, loads as its
// sums (narrow_source). `sums`: a tensor of the accumulation type on the device.
void narrow_gemm_lse(GemmLseArgs a, const at::Tensor& sums, void* workspace, cudaStream_t stream) {
  const int device = sums.get_device();
  const plan::DeviceProps props = device_props(device);
  const plan::NarrowLseTiling tiling = narrow_tiling(a.batch, a.channels, a.c_out, sums.element_size(), device);
  const NarrowSource source = narrow_source(a);
  TORCH_INTERNAL_ASSERT(source != NarrowSource::kPlanesInX || tiling.k_splits == 1,
                        "the narrow epilogue sums x's planes in one range");
  a.k_splits = tiling.k_splits;
  a.split_channels = tiling.split_channels;
  if (a.k_splits > 1) a.partial_logits = workspace;
  const auto key = std::make_tuple(device, static_cast<int>(a.kind), tiling.columns, tiling.lanes,
                                   static_cast<int>(source), tiling.shared_bytes);
  const int blocks_per_sm = once_per_key(key, [&] {
    return narrow_lse_blocks_per_sm(a.kind, tiling.columns, tiling.lanes, source, tiling.shared_bytes);
  });
  const int64_t max_blocks = props.multiprocessors * blocks_per_sm;
  C10_CUDA_CHECK(launch_narrow_lse(a, tiling.columns, tiling.lanes, tiling.shared_bytes, max_blocks, stream));
  if (a.k_splits > 1) {
    split_logits_lse(a.partial_logits, a.k_splits, a.batch, a.c_out, a.kind, a.conv_bias, a.bias, a.bias_stride,
                     a.scale, a.out, resident_split_blocks(device), stream);
  }
}

// The plan forward(x, weight, ...) runs and explain() reports: the planner's, except that the weight serves as its own
// W.sum only where it is contiguous and ungrouped too (the planner sees neither the weight's strides nor its groups;
// a grouped weight's W.sum is block-diagonal, wider than the weight).
plan::Plan plan_of_call(const at::Tensor& weight, int64_t groups, const plan::Problem& problem,
                        const plan::DeviceProps& props) {
  plan::Plan chosen = plan::choose(problem, props);
  chosen.weight_is_its_sum = chosen.weight_is_its_sum && weight.is_contiguous() && groups == 1;
  return chosen;
}

// out [rows] (in `kind`) = 10 x logsumexp(scale x logits + conv_bias + bias) over each row of logits [rows, C_out]
// (accumulation type, rows at any stride, each row contiguous): bias_lse_kernel. Logits [rows, channels, C_out]
// (contiguous) are shares, added over the channels first (shares_lse_kernel; shares_added_in_lse).
void bias_lse(const at::Tensor& logits, const BiasOperands& biases, ScalarKind kind, double scale, void* out,
              int64_t max_blocks, cudaStream_t stream) {
  BiasLseArgs a = lse_output_args(kind, biases.conv_ptr(), biases.bias, biases.bias_stride, out, logits.size(0),
                                  logits.size(-1), scale);
  a.logits = logits.data_ptr();
  if (logits.dim() == 2) a.row_stride = logits.stride(0);
  a.channels = logits.dim() == 3 ? logits.size(1) : 1;
  a.slices = plan::channel_slices(a.channels, a.c_out, kSplitThreads);
  C10_CUDA_CHECK(launch_bias_lse(a, max_blocks, stream));
}

// out [B] (in `kind`) = 10 x logsumexp(scale x sums @ weight_sum + conv_bias + bias) by the gemv epilogue: bias_lse's
// block per row with BiasLseArgs::row_sums, each logit the row's sums [C_in] dotted with a column of weight_sum
// [C_in, C_out] (both contiguous, accumulation type); the block's threads and slices by plan::gemv_lse_tiling.
void gemv_lse(const at::Tensor& sums, const at::Tensor& weight_sum, const BiasOperands& biases, ScalarKind kind,
              double scale, void* out, int64_t max_blocks, cudaStream_t stream) {
  BiasLseArgs a = lse_output_args(kind, biases.conv_ptr(), biases.bias, biases.bias_stride, out, sums.size(0),
                                  weight_sum.size(1), scale);
  a.logits = weight_sum.data_ptr();
  a.row_sums = sums.data_ptr();
  a.channels = sums.size(1);
  const plan::GemvLseTiling tiling = plan::gemv_lse_tiling(a.channels, a.c_out, sums.element_size());
  a.slices = tiling.slices;
  a.threads = static_cast<int>(tiling.threads);
  C10_CUDA_CHECK(launch_bias_lse(a, max_blocks, stream));
}

// groups > 1: out's rows that came out NaN, done again with each column's logit over its own group's rows alone
// (GroupedRowsArgs). rows [B, K] contiguous, the accumulation type; weight the cropped GEMM's weight rows [K, C_out]
// (the accumulation type, contiguous) or, at padding 0, the grouped weight [K, C_out / groups, kH, kW] in `kind`.
// The dense block-diagonal weight every padding-0 GEMM and the planned cropped GEMM multiply turns an infinite sum
// into NaN in the other groups' logits (0 x inf), where the model gives +inf, or -inf for that group's logits
// alone. A launch more for those grouped calls, which reads out [B] and then only the NaN rows (docs/limits.md §101).
void regroup_nan_rows(const at::Tensor& rows, const at::Tensor& weight, int64_t groups,
                      const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias, ScalarKind kind,
                      double scale, at::Tensor& out, cudaStream_t stream) {
  TORCH_INTERNAL_ASSERT(rows.dim() == 2 && rows.is_contiguous() && out.is_contiguous() && groups > 1);
  const bool dense = weight.dim() == 2;
  TORCH_INTERNAL_ASSERT(!dense || (weight.is_contiguous() && weight.scalar_type() == rows.scalar_type()));
  const BiasOperands biases = bias_operands(conv_bias, bias);
  const int64_t batch = rows.size(0), channels = rows.size(1);
  const int64_t c_out = dense ? weight.size(1) : weight.size(1) * groups;
  GroupedRowsArgs g{};
  g.lse = lse_output_args(kind, biases.conv_ptr(), biases.bias, biases.bias_stride, out.data_ptr(), batch, c_out,
                          scale);
  g.lse.row_sums = rows.data_ptr();
  g.lse.channels = channels;
  g.weight = weight.data_ptr();
  if (!dense) {
    for (int d = 0; d < 4; ++d) g.weight_strides[d] = weight.stride(d);
    g.taps_h = static_cast<int>(weight.size(2));
    g.taps_w = static_cast<int>(weight.size(3));
  }
  g.group_rows = channels / groups;
  g.group_columns = c_out / groups;
  C10_CUDA_CHECK(launch_regroup_nan_rows(g, resident_split_blocks(rows.get_device()), stream));
}

// cuBLAS's epilogue's channel slices for a call (plan::cublas_k_splits on `device`): none where float32's GEMM runs
// as 3xTF32 (exact_mm_out, TF32 allowed) or where the slices' partial logits [splits, B, C_out] would not fit the
// workspace budget of a problem of `problem_bytes` at once.
int64_t cublas_call_splits(int64_t batch, int64_t channels, int64_t c_out, int64_t acc_bytes, int64_t problem_bytes,
                           int device) {
  if (acc_bytes == 4 && at::globalContext().allowTF32CuBLAS()) return 1;
  const int64_t splits = plan::cublas_k_splits(batch, channels, c_out, device_props(device).multiprocessors);
  return splits > 1 && splits * batch * c_out * acc_bytes <= workspace_budget_bytes(problem_bytes) ? splits : 1;
}

// How cuBLAS's epilogue runs the GEMM of sums [batch, channels] x weight_sum [channels, c_out] of acc_bytes values for
// output `kind` on `device`, and its workspace within the budget of a problem of `problem_bytes`: channel slices
// (cublas_call_splits) and their partial logits; or batch ranges, as many rows a range as keep its [rows, c_out]
// logits, and where the GEMM runs over bfloat16 pieces (gemm_by_bf16_pieces) its left pieces, within the budget, and
// then the call's right pieces. Sections in that order, each a whole number of 16-byte vectors. Over the pieces, the
// logits' rows are as long as the right pieces' (logits_stride), which the GEMM writes whole (bf16_pieces_mm_out).
struct CublasEpilogue {
  int64_t splits = 1;
  bool pieces = false;
  int64_t range_rows = 0;
  int64_t logits_stride = 0;  // elements from one row of a range's logits to the next
  int64_t logits_bytes = 0, left_bytes = 0, right_bytes = 0;
  int64_t workspace_bytes() const { return logits_bytes + left_bytes + right_bytes; }
};
CublasEpilogue cublas_epilogue(ScalarKind kind, int64_t batch, int64_t channels, int64_t c_out, int64_t acc_bytes,
                               int64_t problem_bytes, int device) {
  CublasEpilogue e;
  e.splits = cublas_call_splits(batch, channels, c_out, acc_bytes, problem_bytes, device);
  if (e.splits > 1) {
    e.logits_bytes = e.splits * batch * c_out * acc_bytes;
    return e;
  }
  const auto size_ranges = [&](bool pieces) {
    const Bf16PiecesSizes sizes = pieces ? bf16_pieces_sizes(channels, c_out) : Bf16PiecesSizes{};
    e.logits_stride = pieces ? sizes.right_stride : c_out;
    const int64_t row_bytes = e.logits_stride * acc_bytes + sizes.left_row_bytes;
    e.pieces = pieces;
    e.range_rows = std::clamp<int64_t>(workspace_budget_bytes(problem_bytes) / std::max<int64_t>(1, row_bytes), 1,
                                       batch);
    e.logits_bytes = ceil_div(e.range_rows * e.logits_stride * acc_bytes, 16) * 16;
    e.left_bytes = ceil_div(e.range_rows * sizes.left_row_bytes, 16) * 16;
    e.right_bytes = sizes.right_bytes;
  };
  size_ranges(gemm_by_bf16_pieces(kind, batch, channels, c_out, device));
  if (e.pieces && e.range_rows < kBf16PiecesMinSide) size_ranges(false);  // ranges too short for the pieces' gain
  return e;
}

// Bytes of workspace run_epilogue's `epilogue` takes for sums [batch, channels] x weight_sum [channels, c_out] of
// acc_bytes values for output `kind` on `device`, in a problem of `problem_bytes`.
int64_t epilogue_workspace_bytes(plan::Epilogue epilogue, ScalarKind kind, int64_t batch, int64_t channels,
                                 int64_t c_out, int64_t acc_bytes, int64_t problem_bytes, int device) {
  switch (epilogue) {
    case plan::Epilogue::kTiledLse:
      return tiled_epilogue(kind, batch, channels, c_out, acc_bytes, device).workspace_bytes;
    case plan::Epilogue::kCublasLse:
      return cublas_epilogue(kind, batch, channels, c_out, acc_bytes, problem_bytes, device).workspace_bytes();
    case plan::Epilogue::kNarrowLse: {
      const plan::NarrowLseTiling t = narrow_tiling(batch, channels, c_out, acc_bytes, device);
      return t.k_splits > 1 ? t.k_splits * batch * c_out * acc_bytes : 0;
    }
    case plan::Epilogue::kRowsLse:
    case plan::Epilogue::kGemvLse: break;
  }
  return 0;
}

// out [B] (in `kind`) = 10 x logsumexp(scale x sums @ weight_sum + conv_bias + bias) by `epilogue`: sums [B, K] and
// weight_sum [K, C_out] contiguous, in the accumulation type. cuBLAS's epilogue writes the [rows, C_out] logits;
// batches go through in ranges that keep them within the workspace budget of `problem_bytes` (cublas_epilogue).
// `workspace`: epilogue_workspace_bytes of memory from the caller's allocation, or null to allocate it here (where it
// takes none, nothing is).
void run_epilogue(plan::Epilogue epilogue, const at::Tensor& sums, const at::Tensor& weight_sum,
                  const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias, ScalarKind kind, double scale,
                  int64_t problem_bytes, at::Tensor& out, void* workspace, cudaStream_t stream) {
  const BiasOperands biases = bias_operands(conv_bias, bias);
  const int64_t batch = sums.size(0), channels = sums.size(1), c_out = weight_sum.size(1);
  const int64_t acc_bytes = sums.element_size();
  const int device = sums.get_device();
  std::optional<Scratch> own_workspace;
  if (workspace == nullptr) {
    const int64_t bytes =
        epilogue_workspace_bytes(epilogue, kind, batch, channels, c_out, acc_bytes, problem_bytes, device);
    own_workspace.emplace(sums, std::initializer_list<int64_t>{bytes});
    workspace = own_workspace->take(bytes);
  }
  if (epilogue == plan::Epilogue::kGemvLse) {
    gemv_lse(sums, weight_sum, biases, kind, scale, out.data_ptr(), resident_split_blocks(device), stream);
    return;
  }
  if (epilogue != plan::Epilogue::kCublasLse) {
    const GemmLseArgs operands = gemm_lse_operands(sums, weight_sum, biases.conv_ptr(), biases.bias,
                                                   biases.bias_stride, kind, scale, out.data_ptr());
    if (epilogue == plan::Epilogue::kRowsLse) {  // the planner checked plan::rows_lse_applies
      rows_gemm_lse(operands, sums, stream);
    } else if (epilogue == plan::Epilogue::kNarrowLse) {  // and plan::narrow_lse_applies
      narrow_gemm_lse(operands, sums, workspace, stream);
    } else {
      tiled_gemm_lse(operands, acc_bytes, device, workspace, stream);
    }
    return;
  }
  const int64_t max_blocks = resident_split_blocks(device);
  const CublasEpilogue cublas = cublas_epilogue(kind, batch, channels, c_out, acc_bytes, problem_bytes, device);
  if (cublas.splits > 1) {
    // Slice s's partial logits are sums[:, s x slice ...] @ weight_sum[s x slice ...]: one strided batched GEMM over
    // views of both (a row of sums steps `channels` apart, a slice `slice` apart), no copy.
    const int64_t slice = channels / cublas.splits;
    at::Tensor partials = tensor_over(workspace, {cublas.splits, batch, c_out}, sums.options());
    at::bmm_out(partials, sums.view({batch, cublas.splits, slice}).transpose(0, 1),
                weight_sum.view({cublas.splits, slice, c_out}));
    split_logits_lse(partials.data_ptr(), cublas.splits, batch, c_out, kind, biases.conv_ptr(), biases.bias,
                     biases.bias_stride, scale, out.data_ptr(), max_blocks, stream);
    return;
  }
  char* const sections = static_cast<char*>(workspace);
  at::Tensor logits =
      tensor_over(sections, {cublas.range_rows, c_out}, sums.options(), {cublas.logits_stride, 1});
  void* const left_pieces = sections + cublas.logits_bytes;
  void* const right_pieces = sections + cublas.logits_bytes + cublas.left_bytes;
  for (int64_t b0 = 0; b0 < batch; b0 += cublas.range_rows) {
    const int64_t rows = std::min(cublas.range_rows, batch - b0);
    // Views only where a range is not the whole (narrow is a dispatcher call of host time).
    at::Tensor range_logits = rows == cublas.range_rows ? logits : logits.narrow(0, 0, rows);
    const at::Tensor range_sums = rows == batch ? sums : sums.narrow(0, b0, rows);
    if (cublas.pieces) {
      bf16_pieces_mm_out(range_logits, range_sums, weight_sum, left_pieces, right_pieces, /*right_written=*/b0 > 0,
                         stream);
    } else {
      exact_mm_out(range_logits, range_sums, weight_sum);
    }
    bias_lse(range_logits, biases, kind, scale, static_cast<char*>(out.data_ptr()) + b0 * out.element_size(),
             max_blocks, stream);
  }
}

at::Tensor cell_weight_cuda(const at::Tensor& grouped_weight, const ForwardShape& s);
at::Tensor cell_weight_cuda(const at::Tensor& grouped_weight, const ForwardShape& s, const Cut& row_cut,
                            const Cut& col_cut);

// The split strategy (plan.h): sums by `reader`, W.sum((2,3)) once (of the weight's `s.conv.groups` groups: zero
// between them), then the GEMM, biases and logsumexp by `epilogue`. `given_weight_sum`, where defined: W.sum made by
// the caller ([C_in, C_out], the accumulation type, contiguous: the padded forward's weight over x's elements), taken
// as it is.
void forward_split(const at::Tensor& x_in, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
                   const at::Tensor& bias, const ForwardShape& s, const plan::Plan& chosen, at::Tensor& out,
                   at::Tensor& sums, bool keep_sums, cudaStream_t stream,
                   const at::Tensor& given_weight_sum = at::Tensor()) {
  const NoAutocast no_autocast;
  const int64_t acc_bytes = sums.element_size(), problem_bytes = x_in.nbytes() + weight.nbytes();
  // A 1 x 1 kernel's W.sum((2, 3)) is the weight itself where it holds the accumulation type (plan::weight_is_its_sum)
  // and is contiguous and ungrouped (plan_of_call): no pass over it (r03's float64 weight, 134 MB, took 32 us of 1365).
  // Grouped, cell_weight_cuda allocates it. Otherwise W.sum and the epilogue's workspace come from one allocation, and
  // the tensors over them by tensor_over, not by dispatcher calls: each of those took 2-5 us of the H200 host's time
  // per call (docs/limits.md §46).
  const bool weight_is_its_sum = chosen.weight_is_its_sum || given_weight_sum.defined();
  const int64_t pairs = s.in_channels * s.out_channels;
  const int64_t weight_sum_bytes = weight_is_its_sum || s.conv.groups > 1 ? 0 : pairs * acc_bytes;
  const int64_t epilogue_bytes =
      epilogue_workspace_bytes(chosen.epilogue, kind_of(x_in.scalar_type()), s.batch, s.in_channels, s.out_channels,
                               acc_bytes, problem_bytes, x_in.get_device());
  Scratch scratch(sums, {weight_sum_bytes, epilogue_bytes});
  at::Tensor weight_sum;
  if (given_weight_sum.defined()) {
    weight_sum = given_weight_sum;
  } else if (weight_is_its_sum) {
    weight_sum = tensor_over(weight.data_ptr(), {s.in_channels, s.out_channels}, sums.options());
  } else if (weight_sum_bytes > 0) {
    weight_sum = tensor_over(scratch.take(weight_sum_bytes), {s.in_channels, s.out_channels}, sums.options());
  } else if (s.conv.groups == 1) {  // no pairs
    weight_sum = at::empty({s.in_channels, s.out_channels}, sums.options());
  }
  void* epilogue_workspace = scratch.take(epilogue_bytes);
  // W.sum((2, 3)) by a launch of its own. Ungrouped, it is a sum over planes of kH x kW taps: the same readers
  // (torch's reduction over so short an inner dimension of a wide weight took tens of microseconds). Grouped, the
  // cropped GEMM's weight kernel with one cell (padding 0) writes the block-diagonal W.sum from the grouped weight.
  const auto sum_weight = [&] {
    if (s.conv.groups > 1) {
      weight_sum = cell_weight_cuda(weight, s).view({s.in_channels, s.out_channels});
    } else {
      read_sums(weight, plan::reader_for_sums(problem_of(weight, 1, 1)), weight_sum, stream);
    }
  };
  if (chosen.reader == plan::Reader::kInEpilogue) {
    // No reader: the tiled epilogue loads x's one-element planes where they lie, or the tensor-core tile sums x's
    // planes (GemmLseArgs::plane_width), and saves them into sums (sums_out); plan::in_epilogue_applies checked their
    // size, dtype and layout. Or the narrow epilogue sums x's tiny planes itself, or loads 16-bit x's one-element
    // planes as its sums (plan::narrow_reads_planes), saving them only where the caller keeps them: their write and
    // read back were most of what it saves.
    if (!weight_is_its_sum) sum_weight();
    const BiasOperands biases = bias_operands(conv_bias, bias);
    GemmLseArgs operands = gemm_lse_operands(sums, weight_sum, biases.conv_ptr(), biases.bias, biases.bias_stride,
                                             kind_of(x_in.scalar_type()), s.scale, out.data_ptr());
    operands.sums = x_in.data_ptr();
    operands.sums_out = sums.data_ptr();
    operands.x_batch_stride = x_in.stride(0);
    operands.x_channel_stride = x_in.stride(1);
    const bool narrow = chosen.epilogue == plan::Epilogue::kNarrowLse;
    if (x_in.size(2) * x_in.size(3) > 1 || narrow) {
      operands.x_row_stride = x_in.stride(2);
      operands.plane_rows = static_cast<int>(x_in.size(2));
      operands.plane_width = static_cast<int>(x_in.size(3));
    }
    if (narrow) {
      for (int64_t r = 0; r < x_in.size(2); ++r) {
        for (int64_t w = 0; w < x_in.size(3); ++w) {
          operands.plane_offsets[operands.plane_elements++] = r * x_in.stride(2) + w * x_in.stride(3);
        }
      }
      if (!keep_sums) operands.sums_out = nullptr;
      narrow_gemm_lse(operands, sums, epilogue_workspace, stream);
    } else {
      tiled_gemm_lse(operands, acc_bytes, x_in.get_device(), epilogue_workspace, stream);
    }
    return;
  }
  // The channel-rows reader folds W.sum into its own launch where it can (reader_weight_fold); where it cannot, W.sum
  // goes first and that reader runs beside it too.
  const WeightFold fold = chosen.reader == plan::Reader::kChannelRows
                               ? reader_weight_fold(weight, s.conv.groups, weight_sum)
                               : WeightFold{};
  const bool beside_weight_sum =
      chosen.reader == plan::Reader::kPlaneLanes || (chosen.reader == plan::Reader::kChannelRows && !fold.weight);
  if (weight_is_its_sum) {
    read_sums(x_in, chosen.reader, sums, stream);
  } else if (beside_weight_sum && pairs > 0) {
    // W.sum first, and x's reader beside it (launch.cuh): the small launch that came between the reader and the
    // epilogue (2.8-4.2 us under Nsight Compute on r02, r07, r10, r13 and r22 of the sweep) runs while x is read.
    // H200, the forward on 16 problems of the sweep against W.sum after the reader (same kernels otherwise): 3-13%
    // faster on 12 (r08 20.4 -> 18.2 us, r19 23.4 -> 20.4, r28 24.8 -> 23.2, r22 118.8 -> 111.7), within 2% on 4.
    sum_weight();
    read_sums(x_in, chosen.reader, sums, stream, {}, /*beside_previous=*/true);
  } else if (!read_sums(x_in, chosen.reader, sums, stream, fold)) {
    sum_weight();
  }
  run_epilogue(chosen.epilogue, sums, weight_sum, conv_bias, bias, kind_of(x_in.scalar_type()), s.scale,
               problem_bytes, out, epilogue_workspace, stream);
}

// The kernels' form of a Cut (kernels.h TapCutGeometry), or none where it is beyond them.
std::optional<TapCutGeometry> tap_geometry(const Cut& c) {
  if (c.head > kMaxTapCut || c.tail > kMaxTapCut || c.kept.size() > static_cast<size_t>(kMaxKernelTaps)) {
    return std::nullopt;
  }
  TapCutGeometry g{};
  g.head = static_cast<int32_t>(c.head);
  g.tail = static_cast<int32_t>(c.tail);
  g.segments = static_cast<int32_t>(c.segments());
  g.taps = static_cast<int32_t>(c.kept.size());
  for (int32_t t = 0; t < g.taps; ++t) {
    const auto [first, end] = c.kept_segments(t);
    g.first[t] = static_cast<int32_t>(first);
    g.end[t] = static_cast<int32_t>(end);
  }
  return g;
}

// The elements of channels-last x a row of the channels walk spans, at least W (its positions): a run of rows spans
// fewer than 2^31 of both, the walk's counts of positions and offsets being 32-bit (tap_sums_cuda's chunk_rows).
int64_t channel_row_extent(const at::Tensor& x) {
  return std::max({x.size(3), x.size(3) * x.stride(3), x.stride(2)});
}

// Whether the tap kernels' rows walk reads rows of `width` elements `stride_h` apart by the span walk: 16-byte loads
// of the memory the rows span, gaps between them included, while the gaps are at most a quarter of W (a slice of
// W); else the element walk, as for rows that overlap (a stride under W) or are 2^31 elements apart.
bool rows_span_walk(int64_t stride_h, int64_t width) {
  return stride_h >= width && 4 * (stride_h - width) <= width && stride_h < (int64_t{1} << 31);
}

// How small_plane_taps_kernel loads x's planes (SmallPlaneTapArgs::vector_planes): as the aligned 16-byte vectors
// around each plane where its rows are contiguous with gaps between them shorter than a DRAM sector
// (row_gaps_under_a_sector, as masked_vectors_suit takes them), every plane starts at the same place in a vector (B's
// and C's strides whole vectors), those vectors hold at most kSmallPlaneElements elements and save enough loads
// (below); else (positions 0) element by element. A thread's plane by scalar loads, 32 planes apart across the warp,
// makes each load touch a sector for 2 to 8 bytes: r26 of the sweep ([500741, 18, 3, 6] float16, rows 8 apart) took 769
// us in this kernel at padding 1, its cells' stores beside, where padding 0's forward by the masked-vector walk takes
// 248 (H100, docs/limits.md §118, §123). The first vector may start up to 15 bytes before x's first element and the
// last end past its last: such a load cannot fault (its 16 aligned bytes share a page with an element of x), and the
// kernel adds none of those bytes.
struct SmallPlaneVectors {
  int32_t lead = 0;        // elements of a plane's first vector before the plane's first element
  int32_t positions = 0;   // elements the vectors hold, lead and gaps included: a whole number of vectors
  int64_t row_stride = 0;  // positions from a row's first element to the next row's
};
SmallPlaneVectors small_plane_vectors(const at::Tensor& x, const ForwardShape& s) {
  const int64_t bytes = x.element_size(), vec = 16 / bytes;
  const int64_t row_stride = s.height > 1 ? x.stride(2) : s.width;
  const auto whole_vectors = [&](int64_t size, int64_t stride) { return size == 1 || stride * bytes % 16 == 0; };
  if ((s.width > 1 && x.stride(3) != 1) || !row_gaps_under_a_sector(row_stride, s.width, bytes) ||
      !whole_vectors(s.batch, x.stride(0)) || !whole_vectors(s.in_channels, x.stride(1))) {
    return {};
  }
  const int64_t lead = static_cast<int64_t>(reinterpret_cast<uintptr_t>(x.data_ptr()) % 16) / bytes;
  const int64_t positions = ceil_div(lead + (s.height - 1) * row_stride + s.width, vec) * vec;
  // Vectors that save few loads are left to the element loads: each position costs the thread a cell lookup, gaps
  // and all. Whole contiguous planes (no lead, no gaps: float64's two elements a vector) at most half as many vectors
  // as elements; planes read across a lead or gaps at most a quarter, in effect the 16-bit types (a float32 vector
  // holds 4 at most). Measured (H100, docs/limits.md §124): r26's [500741, 18, 3, 6] float16, 3 vectors for 18
  // elements, 912 -> 799 us at padding 1; r24's [1903, 588, 3, 5] float32, 5 for 15, 67 -> 85 us.
  const bool gapless = lead == 0 && row_stride == s.width;
  if (positions > kSmallPlaneElements || (gapless ? 2 : 4) * (positions / vec) > s.height * s.width) return {};
  return {static_cast<int32_t>(lead), static_cast<int32_t>(positions), row_stride};
}

// staged_plane_taps_kernel's tile (SmallPlaneTapArgs::staged_planes) and staging order for x, or a tile of 0 where
// it does not apply: more planes than the tap kernels' combining warps take in one round (plan::tap_combine_warps),
// each of more than kSmallPlaneElements elements (below, the thread per plane was as fast or faster on most sweep
// shapes: H200, r01 [1000000, 2, 2, 3] bfloat16 83 us against 147 staged; r13, r58, r07 level; r26 843 against 672)
// and at most kStagedPlaneElements, whose rows (at most a block's threads a plane) or channels are contiguous, at
// most kMaxStagedSegments kept segments a cut and kMaxKernelTaps taps a side, and kStagedPlanesLeast planes or more
// a block within kSmallPlaneSharedBytes.
struct StagedPlanes {
  int32_t tile = 0, plane_pitch = 0;
  bool channel_order = false;
};
StagedPlanes staged_planes(const at::Tensor& x, const ForwardShape& s) {
  const int64_t elements = s.height * s.width;
  if (elements <= kSmallPlaneElements || elements > kStagedPlaneElements || s.kernel_h > kMaxKernelTaps ||
      s.kernel_w > kMaxKernelTaps ||
      s.batch * s.in_channels <= plan::tap_combine_warps(device_props(x.get_device()).multiprocessors)) {
    return {};
  }
  const bool rows_contiguous = x.stride(3) == 1 || (s.width == 1 && x.stride(2) == 1);
  const bool channel_order = !(rows_contiguous && elements <= kSmallPlaneMaxThreads);
  if (channel_order && (x.stride(1) != 1 || s.in_channels == 1)) return {};
  const KeptCells kept = kept_cells(s);
  const int64_t kept_rows = std::count(kept.rows.begin(), kept.rows.end(), true);
  const int64_t kept_cols = std::count(kept.cols.begin(), kept.cols.end(), true);
  if (kept_rows > kMaxStagedSegments || kept_cols > kMaxStagedSegments) return {};
  StagedPlanes staged;
  staged.channel_order = channel_order;
  staged.plane_pitch = static_cast<int32_t>(elements | 1);
  const int64_t acc_bytes = c10::elementSize(accumulation_type(x.scalar_type()));
  const int64_t values = kept_rows * kept_cols + s.kernel_h * s.kernel_w;
  for (int64_t tile = kSmallPlaneMaxThreads; tile >= kStagedPlanesLeast; tile /= 2) {
    const size_t bytes = staged_plane_shared_bytes(static_cast<size_t>(tile), static_cast<size_t>(elements),
                                                   static_cast<size_t>(staged.plane_pitch), static_cast<size_t>(values),
                                                   static_cast<size_t>(acc_bytes));
    if (bytes <= static_cast<size_t>(kSmallPlaneSharedBytes)) {
      staged.tile = static_cast<int32_t>(tile);
      return staged;
    }
  }
  return {};
}

// Who computes tap_sums of x for padding > 0: the tap kernels (taps.cu) with the cuts' geometry, or ATen
// (fusedlse.cpp), and why.
struct TapPath {
  bool kernels;
  const char* why;
  TapCutGeometry rows, cols;  // where kernels
  bool small_planes = false;  // small_plane_taps_kernel (not `kernels`)
  StagedPlanes staged;        // with small_planes, a tile > 0: its staged kernel (SmallPlaneTapArgs::staged_planes)
  bool channels = false;      // where kernels: the channels walk (TapSumsArgs::channels_walk)
  bool channel_rows = false;  // with channels: row by row (TapSumsArgs::channel_rows, plan::channel_walk_by_rows)
  // Each plane is one cell (every cut one segment): where the GEMM runs over cells, the padding-0 readers' sums are
  // the cells (whole_plane_cells), and the taps where asked for ATen's sums of them; else the path above.
  bool whole_planes = false;
  bool keep_gemm = false;  // the taps by one GEMM over a 0/1 keep matrix (keep_gemm_tap_sums; no cells, no shares)
};

// x's kind, data, shape and strides of B, C and H (as s reads them) into the arguments `a` of a kernel that walks its
// planes (TapSumsArgs, KeepGemmArgs).
template <typename Args> void set_planes(Args& a, const at::Tensor& x, const ForwardShape& s) {
  a.kind = kind_of(x.scalar_type());
  a.x = x.data_ptr();
  a.batch = s.batch;
  a.channels = s.in_channels;
  a.height = s.height;
  a.width = s.width;
  a.stride_b = x.stride(0);
  a.stride_c = x.stride(1);
  a.stride_h = x.stride(2);
}

// Whether cell_weight_cuda reads the weight once (cropped_gemm_over_cells' cell_weight_one_pass): a thread per pair
// of channels holds the pair's taps in registers. Where the pairs are too few to fill the device the kernel takes a
// thread per value, each cell loading its taps again, but then the weight is small.
bool cell_weight_in_one_pass(const ForwardShape& s) { return s.kernel_h * s.kernel_w <= kCellWeightRegisterTaps; }

// How the keep GEMM sees x's planes: one matrix [B * C, H * W] whose rows are row_stride apart where every plane is
// the same stride from the one before (a dimension of size 1 has no stride to keep), else [B, C, H * W] batched.
struct KeepGemmPlanes {
  bool one_matrix;
  int64_t row_stride;
};
KeepGemmPlanes keep_gemm_planes(const at::Tensor& x, const ForwardShape& s) {
  const bool one_matrix = s.batch == 1 || s.in_channels == 1 || x.stride(0) == s.in_channels * x.stride(1);
  const int64_t row_stride = s.batch * s.in_channels == 1 ? s.height * s.width
                             : s.in_channels > 1          ? x.stride(1)
                                                          : x.stride(0);
  return {one_matrix, row_stride};
}

// Whether padding's tap sums of x take one GEMM over a 0/1 keep matrix (keep_gemm_tap_sums): 16-bit x whose planes are
// each one run of memory (rows contiguous, each right after the one before) of at most kKeepGemmMaxElements elements
// (tuning.h: the tensor cores' float32 sums over longer planes drift), a kernel of at most kKeepGemmMaxTaps taps. By
// the rule (tuning.h), where the sums would otherwise be the rows walk's (`otherwise`, tap_path_of_sums) and its GEMM
// would run over taps, not cells: planes of kKeepGemmMinElements elements or more, 16-byte aligned
// (planes_start_aligned: cuBLAS's widest loads) where over kKeepGemmUnalignedMaxElements, kKeepGemmMinPlanes of them or
// more. plan::force_keep_gemm may force it on (the rule aside) or off.
bool keep_gemm_applies(const at::Tensor& x, const ForwardShape& s, const TapPath& otherwise) {
  const int forced = plan::forced_keep_gemm();
  const int64_t plane = x.numel() == 0 ? 0 : s.height * s.width;  // no product of sizes past x's elements
  if (forced == 0 || (x.scalar_type() != at::kHalf && x.scalar_type() != at::kBFloat16) || x.numel() == 0 ||
      plane > kKeepGemmMaxElements || s.kernel_h * s.kernel_w > kKeepGemmMaxTaps || s.kernel_h > kMaxKernelTaps ||
      s.kernel_w > kMaxKernelTaps || s.batch * s.in_channels >= (int64_t{1} << 31) ||
      (s.width > 1 && x.stride(3) != 1) || (s.height > 1 && x.stride(2) != s.width)) {
    return false;
  }
  if (forced == 1) return true;
  // The small-plane kernels, and the rows walk where its GEMM runs over fewer cells than taps, were faster than the
  // keep GEMM and the GEMM over taps after it (tuning.h).
  const bool rows_walk_over_taps = otherwise.kernels && !otherwise.channels &&
                                   !cropped_gemm_over_cells(s, cell_weight_in_one_pass(s));
  return rows_walk_over_taps && plane >= kKeepGemmMinElements &&
         (plane <= kKeepGemmUnalignedMaxElements || planes_start_aligned(x)) &&
         s.batch * s.in_channels >= kKeepGemmMinPlanes;
}

// tap_sums [B, C, kH, kW] (float32) of 16-bit x by one GEMM (keep_gemm_applies): x's planes (keep_gemm_planes) times
// keep [H * W, taps rounded up to kKeepGemmColumnMultiple] in x's dtype, on the tensor cores with float32 sums and
// output (ATen's mm or bmm with out_dtype), then keep_gemm_mend: the taps' columns into tap_sums, and planes that hold
// a value that is not finite summed again (kernels.h KeepGemmArgs).
at::Tensor keep_gemm_tap_sums(const at::Tensor& x, const ForwardShape& s) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const int64_t plane = s.height * s.width, taps = s.kernel_h * s.kernel_w, planes = s.batch * s.in_channels;
  const int64_t pitch = ceil_div(taps, kKeepGemmColumnMultiple) * kKeepGemmColumnMultiple;
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  KeepGemmArgs a{};
  set_planes(a, x, s);
  a.kernel_h = static_cast<int32_t>(s.kernel_h);
  a.kernel_w = static_cast<int32_t>(s.kernel_w);
  a.keep_pitch = static_cast<int32_t>(pitch);
  for (int64_t t = 0; t < s.kernel_h; ++t) {
    a.row_first[t] = static_cast<int32_t>(rows.kept[t].first);
    a.row_end[t] = static_cast<int32_t>(rows.kept[t].end);
  }
  for (int64_t u = 0; u < s.kernel_w; ++u) {
    a.col_first[u] = static_cast<int32_t>(cols.kept[u].first);
    a.col_end[u] = static_cast<int32_t>(cols.kept[u].end);
  }
  const at::Tensor keep = at::empty({plane, pitch}, x.options());
  at::Tensor sums = at::empty({s.batch, s.in_channels, s.kernel_h, s.kernel_w}, x.options().dtype(at::kFloat));
  const at::Tensor gemm_sums = pitch == taps ? sums : at::empty({planes, pitch}, sums.options());
  a.keep = keep.data_ptr();
  a.gemm_sums = gemm_sums.const_data_ptr<float>();
  a.sums = sums.data_ptr<float>();
  const int64_t most_blocks = resident_split_blocks(x.get_device());
  C10_CUDA_CHECK(
      launch_keep_matrix(a, std::min(ceil_div(plane * pitch, int64_t{kBlockThreads}), most_blocks), stream));
  const KeepGemmPlanes layout = keep_gemm_planes(x, s);
  if (layout.one_matrix) {
    at::Tensor out = gemm_sums.view({planes, pitch});
    at::mm_out(out, x.as_strided({planes, plane}, {layout.row_stride, 1}), keep, at::kFloat);
  } else {
    at::Tensor out = gemm_sums.view({s.batch, s.in_channels, pitch});
    at::bmm_out(out, x.as_strided({s.batch, s.in_channels, plane}, {x.stride(0), x.stride(1), 1}),
                keep.expand({s.batch, plane, pitch}), at::kFloat);
  }
  C10_CUDA_CHECK(launch_keep_gemm_mend(a, std::min(ceil_div(planes, int64_t{kWarpsPerBlock}), most_blocks), stream));
  return sums;
}

// Who computes the per-tap sums themselves (tap_path adds the whole-plane cells beside them).
TapPath tap_path_of_sums(const at::Tensor& x, const ForwardShape& s) {
  // A block's 32 planes' cells (at most H * W) and taps within kSmallPlaneSharedBytes, in rows of 33 (the kernel's
  // pitch).
  const int64_t small_plane_bytes =
      33 * (s.height * s.width + s.kernel_h * s.kernel_w) * c10::elementSize(accumulation_type(x.scalar_type()));
  if (s.height * s.width <= kSmallPlaneElements && s.kernel_h <= kMaxKernelTaps && s.kernel_w <= kMaxKernelTaps &&
      small_plane_bytes <= kSmallPlaneSharedBytes) {
    TapPath small{false,
                  "planes of at most 64 elements, any layout: a thread per plane adds its elements into its cells "
                  "(pairs of row and column segments), then each tap's kept cells"};
    small.small_planes = true;
    return small;
  }
  // Many planes a little larger are staged by coalesced loads where the layout allows (H200, docs/limits.md §80).
  if (const StagedPlanes tiles = staged_planes(x, s); tiles.tile > 0) {
    TapPath staged{false,
                   "many small planes: a block stages a tile of planes in shared memory by coalesced loads (along "
                   "rows, or along channels where they are contiguous), then a thread per (cell, plane) adds the "
                   "cell's rectangle there, then each tap's kept cells"};
    staged.small_planes = true;
    staged.staged = tiles;
    return staged;
  }
  const auto rows = tap_geometry(cut_of(s, 0)), cols = tap_geometry(cut_of(s, 1));
  if (!rows || !cols) {
    return {false, "padding makes a tap lose more than 8 rows or columns at a border, or the kernel has more than 16 "
                   "taps a side: ATen sums the border pieces, fusedlse's readers the middle (in place)"};
  }
  if (std::max(s.height, s.width) >= (int64_t{1} << 31)) {
    return {false, "a side of x has 2^31 elements or more, beyond the tap kernels' 32-bit rows and columns: ATen "
                   "sums the border pieces, fusedlse's readers the middle (in place)"};
  }
  // W's stride means nothing in rows of one element. Rows whose elements are neighbours go to the rows walks; else
  // channels that are (channels_last and its slices) to the channels walk.
  if (x.stride(3) == 1 || (s.width == 1 && x.stride(1) != 1)) {
    if (s.width < kTapElementWalkMinWidth && !rows_span_walk(x.stride(2), s.width)) {
      static_assert(kTapElementWalkMinWidth == 16, "the text below names the width");
      return {false, "rows narrower than 16 elements with wide gaps between them: ATen sums the border pieces, "
                     "fusedlse's readers the middle (in place)"};
    }
    return {true,
            "the tap kernels: a warp per run of rows (16-byte loads where the gaps between rows are narrow), its "
            "border columns from the same loads, then each tap's sum of the pieces it keeps",
            *rows, *cols};
  }
  if (x.stride(1) == 1) {
    if (channel_row_extent(x) >= (int64_t{1} << 31)) {
      return {false, "a row of x spans 2^31 elements or more, beyond the channels walk's 32-bit offsets: ATen sums the "
                     "border pieces, fusedlse's readers the middle (in place)"};
    }
    static_assert(kChannelRowsMinColumns == 64, "the text below names the width");
    TapPath channels{true,
                     "the tap kernels' channels walk: a warp per run of rows of up to 32 neighbouring channels, a lane "
                     "per channel (several positions at once where C is under 16; row by row in float32 where a lane "
                     "takes one channel of rows of 64 or more, else flat; in 2-byte x each row's middle columns "
                     "walked apart from its border columns), then each tap's sum of the pieces it keeps",
                     *rows, *cols};
    channels.channels = true;
    channels.channel_rows = plan::channel_walk_by_rows(s.in_channels, s.width, x.element_size());
    return channels;
  }
  return {false, "neither x's rows nor its channels are contiguous: ATen sums the border pieces, fusedlse's readers "
                 "the middle (in place)"};
}

// The tap path of x for s, and whether its planes are whole cells.
TapPath tap_path(const at::Tensor& x, const ForwardShape& s) {
  TapPath path = tap_path_of_sums(x, s);
  // Where each cut is one segment (planes of 1 x 1, say), every tap keeps a whole plane or none of it: the plane's
  // sum is its one cell, read as padding 0 reads it. The small-plane kernel, a thread per plane, took 61 us for the
  // cells of x [1000000, 4, 1, 1] float32 where the padding-0 reader took 8; where the per-tap sums are asked for too,
  // it makes both in 153 us against 161 for the reader and one more pass for the taps (H200, docs/limits.md §59).
  path.whole_planes = cut_of(s, 0).segments() == 1 && cut_of(s, 1).segments() == 1;
  if (!path.whole_planes && keep_gemm_applies(x, s, path)) {
    TapPath keep{false,
                 "one GEMM of x's planes by a 0/1 keep matrix [H * W, taps rounded up to 8] on the tensor cores "
                 "(float32 sums; planes whose taps hold an infinity or a NaN summed again by adds alone)"};
    keep.keep_gemm = true;
    return keep;
  }
  return path;
}

// TapSumsArgs::whole_vector_rows of x for the columns' cut `cols`, where the span walk reads its rows.
bool tap_whole_vector_rows(const at::Tensor& x, const ForwardShape& s, const TapCutGeometry& cols) {
  const int64_t vec = 16 / x.element_size();
  return std::max(cols.head, cols.tail) <= vec && planes_start_aligned(x) &&
         s.width % vec == 0 && x.stride(2) % vec == 0;
}

// TapSumsArgs::middle_by_span of x for the rows walk (explain's "middle_by_span" too): rows that follow each other
// with no gap, which the span walk reads, as plan::tap_middle_by_span rules for rows of W elements and the cut's border
// columns.
bool tap_middle_by_span(const at::Tensor& x, const ForwardShape& s, const TapCutGeometry& cols) {
  return x.stride(2) == s.width && (s.width == 1 || x.stride(3) == 1) && rows_span_walk(x.stride(2), s.width) &&
         plan::tap_middle_by_span(tap_whole_vector_rows(x, s, cols), s.width, x.element_size(), cols.head, cols.tail);
}

// Whether x's rows walk goes through the stage (TapSumsArgs::stage_rows, where a row fits it): rows the span walk
// reads, as plan::tap_rows_staged rules, where the middle rows are not summed whole.
bool tap_rows_staged(const at::Tensor& x, const ForwardShape& s, const TapCutGeometry& cols) {
  return rows_span_walk(x.stride(2), s.width) && !tap_middle_by_span(x, s, cols) &&
         plan::tap_rows_staged(tap_whole_vector_rows(x, s, cols), s.width, x.element_size());
}

// TapSumsArgs::middle_by_span of x for the staged walk: rows that follow each other with no gap, as
// plan::tap_staged_span_sums rules for rows of W elements and the cut's border columns.
bool tap_staged_span_sums(const at::Tensor& x, const ForwardShape& s, const TapCutGeometry& cols) {
  return x.stride(2) == s.width && (s.width == 1 || x.stride(3) == 1) &&
         plan::tap_staged_span_sums(s.width, cols.head, cols.tail);
}

// TapSumsArgs::border_side for the columns' cut `cols`: 1 or 2 where that is as wide as either border, 0 (shared
// memory) for wider ones; tap_sums_cuda makes borders of 3 on whole-vector rows kVectorBorderSide.
int32_t tap_border_side(const TapCutGeometry& cols) {
  const int32_t side = std::max(cols.head, cols.tail);
  return side <= 1 ? 1 : side <= 2 ? 2 : 0;
}

// How the rows walks read x's planes for the columns' cut `cols` where the span walk reads its rows
// (rows_span_walk): TapSumsArgs' border_side, stage_bytes, stage_rows and middle_by_span. One place for tap_sums_cuda
// and explain's "middle_by_span", so that what explain reports is what the reader runs.
struct TapRowsWalk {
  int32_t border_side;
  int32_t stage_bytes = 0;  // 0: not through the stage
  int32_t stage_rows = 0;
  bool middle_by_span = false;
};
TapRowsWalk tap_rows_walk(const at::Tensor& x, const ForwardShape& s, const TapCutGeometry& cols) {
  TapRowsWalk walk{tap_border_side(cols)};
  walk.middle_by_span = tap_middle_by_span(x, s, cols);
  const bool staged = tap_rows_staged(x, s, cols);
  // Borders of 3 in registers too where the span walk takes rows of whole vectors (H200 headline, padding 3: 265.2
  // -> 261.8 us in float32, 211.2 -> 170.3 in bfloat16; docs/limits.md §79).
  if (tap_whole_vector_rows(x, s, cols) && !staged && !walk.middle_by_span &&
      std::max(cols.head, cols.tail) == kVectorBorderSide) {
    walk.border_side = kVectorBorderSide;
  }
  if (!staged) return walk;
  // The staged walk: a stage a warp as large as kTapBlocksPerSm blocks of them allow, its pieces as many rows as
  // their span (from the 16-byte boundary before it) fits; none where one row does not (the span walk then, its
  // borders as the staged walk's would be).
  const int64_t shared_per_sm = device_props(x.get_device()).shared_bytes_per_sm;
  const int64_t block_bytes =
      std::min<int64_t>(kDefaultSharedBytesPerBlock, shared_per_sm / kTapBlocksPerSm) -
      static_cast<int64_t>(tap_grid_shared_bytes(kind_of(x.scalar_type()), walk.border_side, cols.head + cols.tail, 0));
  const int64_t stage_bytes = std::min<int64_t>(kTapStageMaxBytes, block_bytes / kWarpsPerBlock / 16 * 16);
  const int64_t stage_elements = stage_bytes / x.element_size(), vec = 16 / x.element_size();
  if (stage_elements >= s.width + vec - 1) {
    walk.stage_bytes = static_cast<int32_t>(stage_bytes);
    walk.stage_rows = static_cast<int32_t>((stage_elements - s.width - (vec - 1)) / x.stride(2) + 1);
    walk.middle_by_span = tap_staged_span_sums(x, s, cols);
  }
  return walk;
}

// Whether the tap kernels' combine of x's planes runs by groups of lanes (tap_group_combine_kernel) rather than a warp
// a plane (tap_combine_kernel): never where it makes the planes' `shares` of the GEMM; always where the `cells` are
// asked (it writes the middle row's into the grid); else where plan::tap_combine_lanes gives a plane fewer than 32
// lanes.
bool tap_combine_by_lane_groups(const at::Tensor& x, const ForwardShape& s, bool shares, bool cells) {
  if (shares) return false;
  if (cells) return true;
  const plan::DeviceProps& props = device_props(x.get_device());
  return plan::tap_combine_lanes(s.batch * s.in_channels, props.multiprocessors, props.warps_per_sm) < 32;
}

// How explain() names `path` of x for s: its "tap_sums" field; for the channels walk its "channel_walk" ("rows" or
// "flat"); for the rows walks "middle_by_span" (TapSumsArgs::middle_by_span, staged or not); for the tap kernels their
// "combine" ("lane_groups" or "warp_per_plane", tap_combine_by_lane_groups of the forward's `shares` and `cells`); for
// the thread per small plane its "plane_loads" ("vectors" or "elements", small_plane_vectors).
std::string tap_path_fields(const TapPath& path, const at::Tensor& x, const ForwardShape& s, bool shares,
                            bool cells) {
  const char* name = path.keep_gemm         ? "keep_gemm"
                     : path.staged.tile > 0 ? "staged_planes"
                     : path.small_planes    ? "small_planes"
                     : path.channels        ? "channel_kernels"
                     : path.kernels         ? "kernels"
                                            : "aten";
  std::string fields = std::string("\"tap_sums\": \"") + name + "\"";
  if (path.channels) fields += std::string(", \"channel_walk\": \"") + (path.channel_rows ? "rows" : "flat") + "\"";
  if (path.kernels && !path.channels) {
    const bool by_span = rows_span_walk(x.stride(2), s.width) && tap_rows_walk(x, s, path.cols).middle_by_span;
    fields += std::string(", \"middle_by_span\": ") + (by_span ? "true" : "false");
  }
  if (path.small_planes && path.staged.tile == 0) {
    fields += std::string(", \"plane_loads\": \"") +
              (small_plane_vectors(x, s).positions > 0 ? "vectors" : "elements") + "\"";
  }
  if (path.kernels) {
    fields += std::string(", \"combine\": \"") +
              (tap_combine_by_lane_groups(x, s, shares, cells) ? "lane_groups" : "warp_per_plane") + "\"";
  }
  return fields;
}

// tap_sums [B, C, kH, kW] of x with small planes (SmallPlaneTapArgs), x not empty; with `kept_cells`, also the sums
// of each plane's kept cells [B, C, kept cells] (fusedlse.h KeptCells) into it. Without `want_taps`, the cells alone
// (an undefined tensor returned). By staged_plane_taps_kernel where `staged` has a tile (TapPath::staged), else by
// small_plane_taps_kernel.
at::Tensor small_plane_tap_sums(const at::Tensor& x, const ForwardShape& s, at::Tensor* kept_cells_out,
                                bool want_taps, const StagedPlanes& staged) {
  const Cut rows = cut_of(s, 0), cols = cut_of(s, 1);
  const KeptCells kept = kept_cells(s);
  std::vector<int32_t> row_place, col_place;  // a segment's place among the kept ones, -1 where no tap keeps it
  int32_t kept_rows = 0, kept_cols = 0;
  for (bool k : kept.rows) row_place.push_back(k ? kept_rows++ : -1);
  for (bool k : kept.cols) col_place.push_back(k ? kept_cols++ : -1);
  const at::TensorOptions acc = x.options().dtype(accumulation_type(x.scalar_type()));
  SmallPlaneTapArgs a{};
  a.kind = kind_of(x.scalar_type());
  a.batch = s.batch;
  a.channels = s.in_channels;
  a.stride_b = x.stride(0);
  a.stride_c = x.stride(1);
  const SmallPlaneVectors vectors = staged.tile == 0 ? small_plane_vectors(x, s) : SmallPlaneVectors{};
  a.vector_planes = vectors.positions > 0;
  // The lead folded into x here, not subtracted in the kernel: that subtraction took float64's kernel with the taps
  // from 48 to 56 registers on sm_90, and r39's forward (float64, element loads) ran 4% slower with it (H100, §124).
  a.x = static_cast<const char*>(x.data_ptr()) - vectors.lead * x.element_size();
  if (a.vector_planes) {
    a.elements = vectors.positions;
    std::fill(a.cell, a.cell + vectors.positions, int8_t{-1});  // the lead, the gaps and past the plane's end
  }
  for (int64_t i = 0; staged.tile == 0 && i < s.height; ++i) {
    for (int64_t j = 0; j < s.width; ++j) {
      const int32_t r = row_place[rows.segment(i)], q = col_place[cols.segment(j)];
      const int8_t cell = static_cast<int8_t>(r < 0 || q < 0 ? -1 : r * kept_cols + q);
      if (a.vector_planes) {
        a.cell[vectors.lead + i * vectors.row_stride + j] = cell;
      } else if (cell >= 0) {
        a.offset[a.elements] = i * x.stride(2) + j * x.stride(3);
        a.cell[a.elements++] = cell;
      }
    }
  }
  a.row_segments = kept_rows;
  a.column_segments = kept_cols;
  a.taps_h = static_cast<int32_t>(s.kernel_h);
  a.taps_w = static_cast<int32_t>(s.kernel_w);
  // A tap's kept segments are all kept, so their places are consecutive; a tap that keeps none, an empty range.
  for (int32_t t = 0; t < a.taps_h; ++t) {
    const auto [first, end] = rows.kept_segments(t);
    a.row_first[t] = static_cast<int8_t>(end > first ? row_place[first] : 0);
    a.row_end[t] = static_cast<int8_t>(end > first ? row_place[first] + (end - first) : 0);
  }
  for (int32_t t = 0; t < a.taps_w; ++t) {
    const auto [first, end] = cols.kept_segments(t);
    a.col_first[t] = static_cast<int8_t>(end > first ? col_place[first] : 0);
    a.col_end[t] = static_cast<int8_t>(end > first ? col_place[first] + (end - first) : 0);
  }
  a.small_channels = s.batch * s.in_channels < (int64_t{1} << 31);
  if (a.small_channels) a.channels_divisor = fast_divisor(static_cast<uint32_t>(s.in_channels));
  a.taps_divisor = fast_divisor(static_cast<uint32_t>(s.kernel_h * s.kernel_w));
  a.cells_divisor = fast_divisor(static_cast<uint32_t>(std::max(1, kept_rows * kept_cols)));
  at::Tensor sums = want_taps ? at::empty({s.batch, s.in_channels, s.kernel_h, s.kernel_w}, acc) : at::Tensor();
  a.sums = want_taps ? sums.data_ptr() : nullptr;
  if (kept_cells_out != nullptr) {
    *kept_cells_out = at::empty({s.batch, s.in_channels, int64_t{kept_rows} * kept_cols}, acc);
    a.cells = kept_cells_out->data_ptr();
  }
  const int64_t planes = s.batch * s.in_channels;
  const int64_t resident_threads = int64_t{device_props(x.get_device()).multiprocessors} * 2048;
  if (staged.tile > 0) {
    a.staged_planes = staged.tile;
    a.plane_pitch = staged.plane_pitch;
    a.channel_order = staged.channel_order;
    a.height = static_cast<int32_t>(s.height);
    a.width = static_cast<int32_t>(s.width);
    a.stride_h = x.stride(2);
    a.stride_w = x.stride(3);
    // Each kept segment's inputs: a run of them (segments are the cut's head inputs one by one, its middle, its tail
    // inputs one by one).
    for (int64_t i = s.height - 1; i >= 0; --i) {
      const int32_t r = row_place[rows.segment(i)];
      if (r < 0) continue;
      a.row_start[r] = static_cast<int16_t>(i);
      if (a.row_stop[r] == 0) a.row_stop[r] = static_cast<int16_t>(i + 1);
    }
    for (int64_t j = s.width - 1; j >= 0; --j) {
      const int32_t q = col_place[cols.segment(j)];
      if (q < 0) continue;
      a.col_start[q] = static_cast<int16_t>(j);
      if (a.col_stop[q] == 0) a.col_stop[q] = static_cast<int16_t>(j + 1);
    }
    a.threads = kSmallPlaneMaxThreads;
    a.blocks = std::clamp<int64_t>(ceil_div(planes, staged.tile), 1, 4 * resident_threads / a.threads);
  } else {
    const int64_t plane_bytes_shared = (int64_t{kept_rows} * kept_cols + s.kernel_h * s.kernel_w) *
                                       c10::elementSize(accumulation_type(x.scalar_type()));
    // Rows of threads + 1 values (small_plane_taps_kernel's pitch).
    a.threads = static_cast<int32_t>(
        std::min<int64_t>(kSmallPlaneMaxThreads, (kSmallPlaneSharedBytes / plane_bytes_shared - 1) / 32 * 32));
    a.pitch = a.threads + 1;
    a.blocks = std::clamp<int64_t>(ceil_div(planes, a.threads), 1, 8 * resident_threads / a.threads);
  }
  C10_CUDA_CHECK(launch_small_plane_taps(a, c10::cuda::getCurrentCUDAStream().stream()));
  return sums;
}

// Each plane's sum of x [B, C, H, W], as [B, C] in the accumulation type, by the planner's reader for sums: sum_hw,
// and the cells of whole planes. `beside_previous` as read_sums'.
at::Tensor plane_sums_cuda(const at::Tensor& x, bool beside_previous = false) {
  at::Tensor sums = at::empty({x.size(0), x.size(1)}, x.options().dtype(accumulation_type(x.scalar_type())));
  read_sums(x, plan::reader_for_sums(problem_of(x, 1, 1)), sums, c10::cuda::getCurrentCUDAStream().stream(),
            WeightFold{}, beside_previous);
  return sums;
}

// The cells of x whose cells are its elements (cells_are_elements), as cell_sums makes them, x not empty: x itself
// where it holds the accumulation type and is contiguous; else widened by the padding-0 readers where each batch's
// values are one run (as 1 x 1 planes: torch's copy with the cast took 129.8 us of r50's [9319, 1244, 2, 2] float16,
// H200); else one copy into a contiguous tensor. `beside_previous` as read_sums'.
at::Tensor element_cells_cuda(const at::Tensor& x, const ForwardShape& s, bool beside_previous) {
  const bool runs = (s.width == 1 || x.stride(3) == 1) && (s.height == 1 || x.stride(2) == s.width) &&
                    (s.in_channels == 1 || x.stride(1) == s.height * s.width);
  if (runs && x.scalar_type() != accumulation_type(x.scalar_type())) {
    return plane_sums_cuda(x.view({s.batch, s.in_channels * s.height * s.width, 1, 1}), beside_previous)
        .view({s.batch, s.in_channels, s.height, s.width});
  }
  return x.to(accumulation_type(x.scalar_type()), /*non_blocking=*/false, /*copy=*/false,
              at::MemoryFormat::Contiguous);
}

// The cells [B, C, 1, 1] of x whose planes no tap crops in part (TapPath::whole_planes), x not empty: each plane's
// sum by the padding-0 readers (in place, the planner's reader for sums). `beside_previous` as tap_sums_cuda's.
at::Tensor whole_plane_cells(const at::Tensor& x, const ForwardShape& s, bool beside_previous) {
  return plane_sums_cuda(x, beside_previous).view({s.batch, s.in_channels, 1, 1});
}

// Whether the cropped GEMM runs over each plane's kept cells rather than its taps (cropped_gemm_over_cells), for the
// tap sums of `path`: the keep GEMM makes taps alone.
bool gemm_over_cells(const TapPath& path, const ForwardShape& s) {
  return !path.keep_gemm && cropped_gemm_over_cells(s, cell_weight_in_one_pass(s));
}

// The cropped GEMM's weight over kept cells [C_in * kept cells, C_out] (fusedlse.h cropped_gemm_operands) in one
// launch (CellWeightArgs): ATen's passes over the weight were a dozen launches, each a few us of a forward of 33 us
// (H200 sweep shape [4844, 2, 31, 44] -> 1543). Undefined where a cut keeps more segments than the kernel takes.
// With padding 0 every tap keeps the one cell: W.sum((2, 3)) [C_in, C_out], block-diagonal for groups.
at::Tensor cell_weight_cuda(const at::Tensor& grouped_weight, const ForwardShape& s) {
  return cell_weight_cuda(grouped_weight, s, cut_of(s, 0), cut_of(s, 1));
}

// The same over the cells of other cuts of x's rows and columns (element_cut's: x's elements), or of the kernel's taps
// (tap_cut's: the weight over taps, [C_in * kH * kW, C_out]).
at::Tensor cell_weight_cuda(const at::Tensor& grouped_weight, const ForwardShape& s, const Cut& row_cut,
                            const Cut& col_cut) {
  CellWeightArgs a{};
  const KeptCells kept = kept_cells(row_cut, col_cut);
  // Each kept segment's taps [first, end): consecutive (CellWeightArgs); checked, and ATen's otherwise.
  const auto tap_ranges = [](const Cut& cut, const std::vector<bool>& kept_segments, int32_t* first, int32_t* end,
                             int32_t& count) {
    count = 0;
    for (int64_t segment = 0; segment < cut.segments(); ++segment) {
      if (!kept_segments[segment]) continue;
      if (count == kMaxCellSegments) return false;
      int64_t lo = -1, hi = -1, keeping = 0;
      for (int64_t t = 0; t < static_cast<int64_t>(cut.kept.size()); ++t) {
        const auto [f, e] = cut.kept_segments(t);
        if (segment < f || segment >= e) continue;
        if (lo < 0) lo = t;
        hi = t + 1;
        ++keeping;
      }
      if (keeping != hi - lo) return false;
      first[count] = static_cast<int32_t>(lo);
      end[count++] = static_cast<int32_t>(hi);
    }
    return true;
  };
  if (!tap_ranges(row_cut, kept.rows, a.row_tap_first, a.row_tap_end, a.kept_rows) ||
      !tap_ranges(col_cut, kept.cols, a.col_tap_first, a.col_tap_end, a.kept_cols)) {
    return at::Tensor();
  }
  const at::Tensor weight = grouped_weight.contiguous();
  a.kind = kind_of(weight.scalar_type());
  a.weight = weight.data_ptr();
  a.in_channels = s.in_channels;
  a.out_channels = s.out_channels;
  a.groups = s.conv.groups;
  a.kernel_h = s.kernel_h;
  a.kernel_w = s.kernel_w;
  at::Tensor out = at::empty({s.in_channels * a.kept_rows * a.kept_cols, s.out_channels},
                             weight.options().dtype(accumulation_type(weight.scalar_type())));
  a.out = out.data_ptr();
  // A thread per pair of channels where the pairs fill each multiprocessor's block or more. H200, us (torch.profiler):
  // r55 of the sweep ([33, 3239, 5, 3] float64, 9 cells, 107K pairs) 37.5 by values, 13.2 by pairs; r30 ([12, 5164,
  // 5, 5] float16, 62K pairs) 5.0 / 4.0; r20 ([197, 88, 4, 5] float32, 17K pairs) 4.2 / 4.6; r10 ([2, 1543, 4, 3],
  // 3K pairs) 2.3 / 3.8: a pair's cells are one thread's work in turn, few threads.
  a.by_pairs = cell_weight_in_one_pass(s) &&
               s.in_channels * s.out_channels >= int64_t{device_props(weight.get_device()).multiprocessors} *
                                                     kBlockThreads;
  a.blocks = std::clamp<int64_t>(ceil_div(cell_weight_threads(a), kBlockThreads), 1,
                                 8 * resident_split_blocks(weight.get_device()));
  C10_CUDA_CHECK(launch_cell_weight(a, c10::cuda::getCurrentCUDAStream().stream()));
  return out;
}

// tap_sums [B, C, kH, kW] of x for padding > 0 (fusedlse.h), by `path` (tap_path(x, s)); with `cells`, also the
// cells' sums into it for the cropped GEMM: [B, C, kept cells] where *cells_kept_only comes back true (the
// small-plane kernel), else cell_sums' [B, C, row segments, column segments]; with `weight` (grouped, contiguous, x's
// dtype) and the tap kernels' path, also the cropped GEMM's shares [B * C, C_out] into `shares` (TapSumsArgs).
// `beside_previous`: the tap kernels' reader may run beside the grid ahead, which must touch nothing it does.
// `want_taps` false (the forward's cells or shares are all its caller needs): no tap sums, an undefined tensor
// returned (the cells or the shares are then asked for).
at::Tensor tap_sums_cuda(const at::Tensor& x, const ForwardShape& s, const TapPath& path, at::Tensor* cells = nullptr,
                         bool* cells_kept_only = nullptr, const at::Tensor* weight = nullptr,
                         at::Tensor* shares = nullptr, bool beside_previous = false, bool want_taps = true) {
  TORCH_INTERNAL_ASSERT(want_taps || cells != nullptr || shares != nullptr);
  if (path.keep_gemm) {
    TORCH_INTERNAL_ASSERT(want_taps && cells == nullptr && shares == nullptr);
    return keep_gemm_tap_sums(x, s);
  }
  // Whole planes' cells by the padding-0 readers, with or without the taps (ATen's, from the cells): a forward with
  // the sums and one without get the same cells. Cells of single elements are exact either way; the small-plane
  // kernel makes them and their taps in one pass.
  if (path.whole_planes && cells != nullptr && x.numel() > 0 && !(want_taps && cells_are_elements(s))) {
    *cells = whole_plane_cells(x, s, beside_previous);
    return want_taps ? tap_sums_of_cells(*cells, s) : at::Tensor();
  }
  if (cells_kept_only != nullptr) *cells_kept_only = path.small_planes && x.numel() > 0;
  if (path.small_planes && x.numel() > 0) return small_plane_tap_sums(x, s, cells, want_taps, path.staged);
  if (!path.kernels || x.numel() == 0) {
    if (cells == nullptr) return tap_sums(x, s);
    *cells = cell_sums(x, s);
    return want_taps ? tap_sums_of_cells(*cells, s) : at::Tensor();
  }
  const TapCutGeometry& rows = path.rows;
  const TapCutGeometry& cols = path.cols;
  const at::TensorOptions acc = x.options().dtype(accumulation_type(x.scalar_type()));
  at::Tensor sums = want_taps ? at::empty({s.batch, s.in_channels, s.kernel_h, s.kernel_w}, acc) : at::Tensor();
  const int64_t planes = s.batch * s.in_channels;
  TapSumsArgs a{};
  set_planes(a, x, s);
  a.stride_w = x.stride(3);
  a.rows = rows;
  a.cols = cols;
  a.channels_walk = path.channels;
  if (a.channels_walk) {
    // Slices of at most 32 channels, as even as they go (plan::channel_walk_slices says how many); the lanes left
    // over take further positions.
    a.channel_slices = plan::channel_walk_slices(s.in_channels, x.element_size());
    a.channel_lanes = static_cast<int32_t>(ceil_div(s.in_channels, a.channel_slices));
    a.position_lanes = plan::channel_walk_position_groups(a.channel_lanes);
    a.position_step_cols = static_cast<int32_t>(a.position_lanes % s.width);
    a.position_step_offset = a.position_lanes / s.width * x.stride(2) + a.position_step_cols * x.stride(3);
    a.position_wrap_offset = x.stride(2) - s.width * x.stride(3);
    a.middle_width = static_cast<int32_t>(s.width - cols.head - cols.tail);
    if (a.middle_width > 0) {
      a.middle_step_cols = a.position_lanes % a.middle_width;
      a.middle_step_offset = static_cast<uint32_t>(a.position_lanes / a.middle_width * x.stride(2) +
                                                   a.middle_step_cols * x.stride(3));
      a.middle_wrap_offset = static_cast<uint32_t>(x.stride(2) - a.middle_width * x.stride(3));
    }
    a.channel_rows = path.channel_rows;
    TORCH_INTERNAL_ASSERT(!a.channel_rows || a.position_lanes == 1,
                          "tap_sums_cuda: the row walk takes a lane a channel");
  }
  const int64_t stride_h = x.stride(2);
  a.span_walk = !a.channels_walk && rows_span_walk(stride_h, s.width);
  if (a.span_walk) a.row_stride = fast_divisor(static_cast<uint32_t>(stride_h));
  a.row_elements = fast_divisor(static_cast<uint32_t>(s.width));
  a.element_step_cols = static_cast<int32_t>(32 % s.width);
  a.element_step_offset = 32 / s.width * stride_h;
  a.whole_vector_rows = a.span_walk && tap_whole_vector_rows(x, s, cols);
  const TapRowsWalk walk = a.span_walk ? tap_rows_walk(x, s, cols) : TapRowsWalk{tap_border_side(cols)};
  a.border_side = walk.border_side;
  a.stage_bytes = walk.stage_bytes;
  a.stage_rows = walk.stage_rows;
  a.middle_by_span = walk.middle_by_span;
  // Runs of rows as plan::tap_run_chunks cuts them for the warps resident at once, each spanning fewer than 2^31
  // elements (the walks' 32-bit positions).
  const int device = x.get_device();
  const int border_cols = cols.head + cols.tail;
  const int blocks_per_sm = once_per_key(
      std::make_tuple(device, static_cast<int>(a.kind), a.border_side, border_cols, a.channels_walk, a.channel_rows,
                      a.stage_bytes, a.middle_by_span),
      [&] {
        return tap_sums_blocks_per_sm(a.kind, a.border_side, border_cols, a.channels_walk, a.channel_rows,
                                      a.stage_bytes, a.middle_by_span);
      });
  const int64_t resident_blocks = device_props(device).multiprocessors * blocks_per_sm;
  const int64_t runs_of_all_rows = a.channels_walk ? s.batch * a.channel_slices : planes;
  // A run's row: the bytes of x a warp loads for it (the lanes' channels of each position in the channels walk).
  const int64_t row_bytes = (a.channels_walk ? s.width * a.channel_lanes : s.width) * x.element_size();
  const int64_t chunks = plan::tap_run_chunks(s.height, row_bytes, runs_of_all_rows, resident_blocks * kWarpsPerBlock);
  // The channels walk counts a run's positions (rows * W) and its offsets in 32 bits; the rows walks its span of
  // elements.
  const int64_t row_extent = a.channels_walk ? channel_row_extent(x) : std::max(s.width, stride_h);
  a.chunk_rows = std::min(ceil_div(s.height, chunks), ((int64_t{1} << 31) - 1) / row_extent);
  a.chunks = ceil_div(s.height, a.chunk_rows);
  a.evict_first = loads_evict_first(x, device_props(device));
  a.beside_previous = beside_previous;
  const at::Tensor partials = at::empty({planes, a.chunks, 1 + cols.head + cols.tail}, acc);
  const at::Tensor grid = at::empty({planes, rows.segments, cols.segments}, acc);
  a.partials = partials.data_ptr();
  a.grid = grid.data_ptr();
  if (cells != nullptr) *cells = grid.view({s.batch, s.in_channels, rows.segments, cols.segments});
  a.sums = want_taps ? sums.data_ptr() : nullptr;
  if (weight != nullptr) {
    *shares = at::empty({planes, s.out_channels}, acc);
    a.weight = weight->data_ptr();
    a.groups = s.conv.groups;
    a.shares = shares->data_ptr();
    a.c_out = s.out_channels;
    a.group_columns = s.out_channels / s.conv.groups;
    if (planes < (int64_t{1} << 31)) {
      a.group_divisor = fast_divisor(static_cast<uint32_t>(s.in_channels / s.conv.groups));
    }
  }
  if (planes < (int64_t{1} << 31)) a.channel_divisor = fast_divisor(static_cast<uint32_t>(s.in_channels));
  a.unit_divisions = !a.channels_walk && planes * a.chunks < (int64_t{1} << 31);
  if (a.unit_divisions) a.chunk_divisor = fast_divisor(static_cast<uint32_t>(a.chunks));
  a.read_blocks = ceil_div(runs_of_all_rows * a.chunks, kWarpsPerBlock);
  const plan::DeviceProps& props = device_props(device);
  if (tap_combine_by_lane_groups(x, s, weight != nullptr, cells != nullptr)) {
    // tap_group_combine_kernel: at least as many lanes a plane as cover its runs, and for the taps as many as
    // plan::tap_combine_lanes asks for; as many blocks as its instance's registers let be resident at once at most (a
    // loop over the rest: §125 found r16's float32 kSide-0 combine at 4 blocks an SM run in two waves when the grid
    // was sized for 8); for the cells alone no launch where no row is a middle one (the reader wrote every cell).
    int32_t lanes = 1;
    while (lanes < 32 && lanes < a.chunks) lanes *= 2;
    if (want_taps) lanes = std::max(lanes, plan::tap_combine_lanes(planes, props.multiprocessors, props.warps_per_sm));
    a.group_lanes = lanes;
    a.own_taps = want_taps && cells == nullptr && plan::tap_combine_own_taps(lanes);
    const int64_t group_combine_per_sm = once_per_key(
        std::make_tuple(device, static_cast<int>(a.kind), a.border_side, want_taps, a.own_taps),
        [&] { return tap_group_combine_resident_per_sm(a.kind, a.border_side, want_taps, a.own_taps); });
    a.combine_blocks = want_taps || s.height - rows.tail > rows.head
                           ? std::min(ceil_div(planes * lanes, int64_t{kBlockThreads}),
                                      props.multiprocessors * group_combine_per_sm)
                           : 0;
  } else {
    // The weight staged for the shares where kTapCombineBlocksPerSm blocks of it fit on an SM, without opting in
    // past kDefaultSharedBytesPerBlock (the H200's headline: 36.9 KiB a block; not the RTX 4090's 100 KiB an SM),
    // but not float64's (tap_combine_kernel has no such instance).
    if (weight != nullptr && a.kind != ScalarKind::kDouble) {
      a.weight_pitch = static_cast<int32_t>(rows.taps * cols.taps) | 1;
      const int64_t limit = std::min<int64_t>(kDefaultSharedBytesPerBlock,
                                              props.shared_bytes_per_sm / kTapCombineBlocksPerSm);
      if (static_cast<int64_t>(tap_combine_shared_bytes(a)) > limit) a.weight_pitch = 0;
    }
    // The combining warps loop over the planes: no more blocks than fit at once (a later wave of them would start
    // only as the first ended).
    const size_t combine_shared = tap_combine_shared_bytes(a);
    const bool staged_weight = a.weight_pitch > 0;
    const int64_t combine_per_sm = once_per_key(
        std::make_tuple(device, static_cast<int>(a.kind), a.border_side, want_taps, staged_weight, combine_shared),
        [&] { return tap_combine_resident_per_sm(a.kind, a.border_side, want_taps, staged_weight, combine_shared); });
    a.combine_blocks = std::min(props.multiprocessors * combine_per_sm, ceil_div(planes, int64_t{kWarpsPerBlock}));
  }
  C10_CUDA_CHECK(launch_tap_sums(a, c10::cuda::getCurrentCUDAStream().stream()));
  return sums;
}

// The planner's one-pass forward of x (padding 0; weight [C_in, C_out / groups, kH, kW] of s.conv.groups groups)
// into out [B, 1] and sums [B, C_in]: the fused launch or the split strategy, as plan_of_call chooses. Without
// keep_sums, a plan that needs no sums may leave them unwritten.
void forward_planned(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& conv_bias,
                     const at::Tensor& bias, const ForwardShape& s, at::Tensor& out, at::Tensor& sums,
                     bool keep_sums) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const plan::Plan chosen = plan_of_call(weight, s.conv.groups, problem_of(x, s.out_channels, s.kernel_h * s.kernel_w),
                                         device_props(x.get_device()));
  if (chosen.strategy == plan::Strategy::kFused) {
    forward_fused(x, weight, conv_bias, bias, s, out, sums, stream);
  } else {
    forward_split(x, weight, conv_bias, bias, s, chosen, out, sums, keep_sums, stream);
  }
}

// The cropped forward's GEMM as a padding-0 problem: its rows [B, C_in * per_channel] (cropped_gemm_operands: the
// kept cells' or the taps' sums) are x of 1 x 1 planes, the weight's rows [C_in * per_channel, C_out] a 1 x 1
// kernel (both of the accumulation type), the scale x's. The planner then gives this GEMM the epilogues it gives any
// other (the split strategy's without its reader: the rows are the sums), the fused launch's split over channel
// groups among them: on the headline's [16, 576] x [576, 128] (H200) the tiled kernel alone took 31 us, cuBLAS's
// split-K 54 us, beside 254 us for reading x.
ForwardShape cropped_gemm_shape(const ForwardShape& s, int64_t per_channel) {
  ForwardShape g = s;
  g.in_channels = s.in_channels * per_channel;
  g.height = g.width = g.kernel_h = g.kernel_w = 1;
  g.conv = ConvSettings{};
  return g;
}

// The planner's view of the cropped GEMM of x, gemm_x its rows as 1 x 1 planes (cropped_gemm_shape): its epilogue
// runs alone on rows that are sums already, so the tiled epilogue has no reader to run beside (Problem::x_in_epilogue),
// and its output is x's dtype (Problem::output_bytes).
plan::Problem cropped_gemm_problem(const at::Tensor& x, const at::Tensor& gemm_x, int64_t out_channels) {
  plan::Problem problem = problem_of(gemm_x, out_channels, 1);
  problem.x_in_epilogue = false;
  problem.output_bytes = x.element_size();
  return problem;
}

// Whether the tap kernels compute the cropped GEMM's shares beside the per-tap sums (TapSumsArgs), the shares then
// added over channels and taken through the logsumexp (bias_lse; shares_added_in_lse): where the shares
// [B * C_in, C_out] stay within the workspace budget and the weight the combining warps read (C_out values per tap
// of each plane, from L2) is at most kTapSharesWeightReadShare of x's bytes, and each combining warp's shares are a
// short loop over one plane (plan::tap_shares_short). Otherwise the GEMM is a padding-0 forward (cropped_gemm_shape).
// H200 headline padding 1: the forward took 358 us through the planner's split (cuBLAS's split-K GEMM alone 54 us),
// 311 us with the shares (docs/limits.md §30).
bool tap_shares_apply(const at::Tensor& x, const at::Tensor& grouped_weight, const ForwardShape& s,
                      const TapPath& path) {
  const int64_t acc_bytes = c10::elementSize(accumulation_type(x.scalar_type()));
  const double shares_bytes = static_cast<double>(s.batch) * s.in_channels * s.out_channels * acc_bytes;
  const double weight_reads = shares_bytes * s.kernel_h * s.kernel_w;
  return shares_bytes <= static_cast<double>(workspace_budget_bytes(x.nbytes() + grouped_weight.nbytes())) &&
         weight_reads <= kTapSharesWeightReadShare * static_cast<double>(x.nbytes()) && x.numel() > 0 &&
         path.kernels &&
         plan::tap_shares_short(s.batch * s.in_channels, s.out_channels, s.kernel_h * s.kernel_w, acc_bytes,
                                device_props(x.get_device()).multiprocessors);
}

// Whether the tap kernels' shares [B, C_in, C_out] are added over the channels by the logsumexp's launch, a block
// per row (shares_lse_kernel), where its threads' loads are few; else by torch's sum first.
bool shares_added_in_lse(const ForwardShape& s) {
  return s.in_channels * s.out_channels <= kSharesLseMaxLoads * kSplitThreads;
}

// The padded forward's GEMM over x's elements (element_gemm): [B, C_in * H * W] x [C_in * H * W, C_out], each
// element's weight the sum of the taps' that keep it (cell_weight_cuda over element_cut's cells), x's values read
// where they lie. Where a batch's values are one run of memory, in whatever order of C, H and W, the rows are that
// run and the weight's rows are put in the same order.
struct ElementGemm {
  at::Tensor x_elements;          // x as [B, C_in * H * W, 1, 1], a batch's values in memory order (stride 1)
  std::array<int64_t, 3> order;   // x's dimensions 1 to 3 (C, H, W) from the outermost in memory to the innermost
  ForwardShape shape;             // the GEMM as a padding-0 forward of 1 x 1 planes (cropped_gemm_shape)
  // 16-bit x (`in_place`): the split strategy with the narrow epilogue loading x's elements (plan::
  // narrow_reads_planes). Else x holds the accumulation type and its rows are contiguous: they are the cropped GEMM's
  // rows as they lie (cropped_gemm_problem's plan).
  bool in_place;
  plan::Problem problem;  // the GEMM as the planner saw it
  plan::Plan plan;
};

// Whether the padded forward runs its GEMM over x's elements, and how: x of kElementGemmMinBytes or more, groups 1,
// every element kept by some tap (an element no tap keeps would get a weight of 0, and an infinity there a NaN the
// model does not make), planes no taller or wider than cell_weight_cuda takes (kMaxCellSegments), not planes of several
// elements that are each one cell (whole_planes: the padding-0 readers' sums serve), a batch's values one run of
// memory, the weight over elements (C_out values each, staged by every block of the epilogue) within x's bytes over
// the multiprocessors; for 16-bit x the planner's plan for the GEMM loading x itself. Then: where the cells are x's
// elements, always (the GEMM over cells would read the same values, from a widened or contiguous copy); else where the
// planner's time for the GEMM is within kElementGemmShare of its time for padding 0's forward of x, or below the tap
// readers' time at their best rate (kTapReaderElementsPerSmUs).
// plan::force_element_gemm may force it on (the bounds on sizes and times aside) or off.
std::optional<ElementGemm> element_gemm(const at::Tensor& x, const ForwardShape& s, const TapPath& path) {
  const int forced = plan::forced_element_gemm();
  // Whole planes of several elements: the padding-0 readers' sums are their cells. Planes of one element are x's
  // elements: the narrow epilogue loads 16-bit ones itself, as padding 0's plan does (r22 of the sweep at padding 1,
  // [618884, 53, 1, 1] float16 -> 2: 134.5 us by the readers' sums, where its padding-0 forward took 70.6; H100).
  const bool whole_planes = path.whole_planes && s.height * s.width > 1;
  if (forced == 0 || s.conv.groups != 1 || x.numel() == 0 || whole_planes || s.height > kMaxCellSegments ||
      s.width > kMaxCellSegments || (forced < 0 && x.nbytes() < kElementGemmMinBytes)) {
    return std::nullopt;
  }
  const int64_t elements = s.in_channels * s.height * s.width;
  if (static_cast<int64_t>(kept_cells(element_cut(s, 0), element_cut(s, 1)).cells.size()) != s.height * s.width) {
    return std::nullopt;
  }
  ElementGemm e{};
  // Dimensions of one value go outermost (their strides say nothing); the others must tile one run.
  e.order = {1, 2, 3};
  const auto outer_stride = [&](int64_t dim) {
    return x.size(dim) == 1 ? std::numeric_limits<int64_t>::max() : x.stride(dim);
  };
  std::stable_sort(e.order.begin(), e.order.end(),
                   [&](int64_t a, int64_t b) { return outer_stride(a) > outer_stride(b); });
  int64_t run = 1;
  for (auto it = e.order.rbegin(); it != e.order.rend(); ++it) {
    if (x.size(*it) == 1) continue;
    if (x.stride(*it) != run) return std::nullopt;
    run *= x.size(*it);
  }
  const plan::DeviceProps props = device_props(x.get_device());
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  const double weight_bytes = static_cast<double>(elements) * s.out_channels * c10::elementSize(acc);
  if (forced < 0 && weight_bytes * props.multiprocessors > static_cast<double>(x.nbytes())) return std::nullopt;
  e.shape = cropped_gemm_shape(s, s.height * s.width);
  e.in_place = acc != x.scalar_type();
  if (e.in_place) {
    e.x_elements = x.as_strided({s.batch, elements, 1, 1}, {x.stride(0), 1, 1, 1});
    e.problem = problem_of(e.x_elements, s.out_channels, 1);
    e.plan = plan::choose(e.problem, props);
    if (e.plan.strategy != plan::Strategy::kSplit || e.plan.reader != plan::Reader::kInEpilogue) return std::nullopt;
  } else {
    if (s.batch > 1 && x.stride(0) != elements) return std::nullopt;
    e.x_elements = x.as_strided({s.batch, elements, 1, 1}, {elements, 1, 1, 1});
    e.problem = cropped_gemm_problem(x, e.x_elements, s.out_channels);
    e.plan = plan::choose(e.problem, props);
  }
  if (forced == 1 || cells_are_elements(s)) return e;
  const plan::Plan padding0 = plan::choose(problem_of(x, s.out_channels, s.kernel_h * s.kernel_w), props);
  const double tap_readers_us =
      static_cast<double>(x.numel()) / (kTapReaderElementsPerSmUs * static_cast<double>(props.multiprocessors));
  if (e.plan.predicted_us > std::max(kElementGemmShare * padding0.predicted_us, tap_readers_us)) return std::nullopt;
  return e;
}

// The GEMM's weight over x's elements [C_in * H * W, C_out] in the accumulation type, its rows in x's memory order
// (ElementGemm::order).
at::Tensor element_weight_cuda(const at::Tensor& grouped_weight, const ForwardShape& s, const ElementGemm& e) {
  const at::Tensor by_planes = cell_weight_cuda(grouped_weight, s, element_cut(s, 0), element_cut(s, 1));
  TORCH_INTERNAL_ASSERT(by_planes.defined(), "element_gemm admits only planes cell_weight_cuda takes");
  return by_planes.view({s.in_channels, s.height, s.width, s.out_channels})
      .permute({e.order[0] - 1, e.order[1] - 1, e.order[2] - 1, 3})
      .contiguous()
      .view({e.shape.in_channels, s.out_channels});
}

// out = the padded forward's GEMM `operands` (their rows of the accumulation type), biases and logsumexp, as a
// padding-0 forward (cropped_gemm_shape): where the planner splits it, only its epilogue; where it fuses it, the fused
// launch, which for 16-bit x runs in float32 (the biases widened, the result rounded to x's dtype once, as the
// padding-0 kernels do). Returns out.
at::Tensor cropped_gemm_forward(const at::Tensor& x, CroppedGemm operands, const c10::optional<at::Tensor>& conv_bias,
                                const at::Tensor& bias, const ForwardShape& s, at::Tensor& out, cudaStream_t stream) {
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  // Rows that are x itself start where x does: copied where that is not as aligned as a fresh tensor, so that the
  // forward with the sums (the small-plane kernel's cells) and without them run the same kernels on the same rows.
  if (reinterpret_cast<uintptr_t>(operands.x_rows.data_ptr()) % 16 != 0) operands.x_rows = operands.x_rows.clone();
  const ForwardShape g = cropped_gemm_shape(s, operands.per_channel);
  const at::Tensor gemm_x = operands.x_rows.view({g.batch, g.in_channels, 1, 1});
  const at::Tensor gemm_weight = operands.weight_rows.view({g.in_channels, g.out_channels, 1, 1});
  const plan::Plan chosen =
      plan_of_call(gemm_weight, 1, cropped_gemm_problem(x, gemm_x, g.out_channels), device_props(x.get_device()));
  if (chosen.strategy == plan::Strategy::kSplit) {
    // The GEMM's rows are its sums already (1 x 1 planes of the accumulation type, contiguous), and its weight its
    // W.sum: the split strategy's reader would only copy them (H200, r50 of the sweep at padding 1: 99 us of 463 for
    // 185 MB of tap sums). Its epilogue alone, the output and biases in x's dtype as the padding-0 forward's: no
    // widened copies of the biases, no rounding copy of the output.
    run_epilogue(chosen.epilogue, operands.x_rows, operands.weight_rows, conv_bias, bias, kind_of(x.scalar_type()),
                 s.scale, operands.x_rows.nbytes() + operands.weight_rows.nbytes(), out, nullptr, stream);
    if (s.conv.groups > 1) {
      regroup_nan_rows(operands.x_rows, operands.weight_rows, s.conv.groups, conv_bias, bias,
                       kind_of(x.scalar_type()), s.scale, out, stream);
    }
    return out;
  }
  // The fused launch, as forward_planned would run it for this plan (called directly: planning again is host time).
  at::Tensor gemm_sums = at::empty({g.batch, g.in_channels}, x.options().dtype(acc));
  // 16-bit x runs in float32: the biases widened, the output rounded to x's dtype once at the end.
  const bool widened = acc != x.scalar_type();
  c10::optional<at::Tensor> gemm_conv_bias = conv_bias;
  if (widened && conv_bias.has_value()) gemm_conv_bias = conv_bias->to(acc);
  const at::Tensor gemm_bias = widened ? bias.to(acc) : bias;
  at::Tensor gemm_out = widened ? at::empty({s.batch, 1}, x.options().dtype(acc)) : out;
  forward_fused(gemm_x, gemm_weight, gemm_conv_bias, gemm_bias, g, gemm_out, gemm_sums, stream);
  if (s.conv.groups > 1) {
    regroup_nan_rows(operands.x_rows, operands.weight_rows, s.conv.groups, gemm_conv_bias, gemm_bias, kind_of(acc),
                     s.scale, gemm_out, stream);
  }
  if (widened) out.copy_(gemm_out);
  return out;
}

// forward for padding > 0: the GEMM over x's elements where element_gemm says so (the tap sums only where they are
// kept); else the per-tap sums, then their GEMM + biases + logsumexp, by the tap kernels' shares where
// tap_shares_apply, else over cells or taps by cropped_gemm_forward. Returns the output and the per-tap sums [B, C_in,
// kH, kW]: without keep_sums, those are made only where the GEMM runs over them (undefined otherwise).
std::tuple<at::Tensor, at::Tensor> forward_cropped_cuda(const at::Tensor& x, const at::Tensor& grouped_weight,
                                                        const c10::optional<at::Tensor>& conv_bias,
                                                        const at::Tensor& bias, const ForwardShape& s,
                                                        bool keep_sums) {
  const NoAutocast no_autocast;
  const at::ScalarType acc = accumulation_type(x.scalar_type());
  at::Tensor out = at::empty({s.batch, 1}, x.options());
  if (s.batch == 0) return {out, at::empty({0, s.in_channels, s.kernel_h, s.kernel_w}, x.options().dtype(acc))};
  const TapPath path = tap_path(x, s);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  if (const std::optional<ElementGemm> elements = element_gemm(x, s, path)) {
    // The same GEMM with the sums kept as without (the forward's output bitwise the same): the tap sums for the
    // backward then take a pass over x of their own.
    const at::Tensor sums = keep_sums ? tap_sums_cuda(x, s, path) : at::Tensor();
    const at::Tensor weight_rows = element_weight_cuda(grouped_weight, s, *elements);
    const int64_t depth = elements->shape.in_channels;
    if (!elements->in_place) {
      cropped_gemm_forward(x, CroppedGemm{elements->x_elements.view({s.batch, depth}), weight_rows,
                                          s.height * s.width},
                           conv_bias, bias, s, out, stream);
      return {out, sums};
    }
    // The narrow epilogue loads x's elements itself and keeps none: a [B, depth] view of one value stands for the
    // sums forward_split would write.
    at::Tensor no_rows = at::empty({1}, x.options().dtype(acc)).expand({s.batch, depth});
    forward_split(elements->x_elements, weight_rows.view({depth, s.out_channels, 1, 1}), conv_bias, bias,
                  elements->shape, elements->plan, out, no_rows, /*keep_sums=*/false, stream, weight_rows);
    return {out, sums};
  }
  if (tap_shares_apply(x, grouped_weight, s, path)) {
    const at::Tensor weight = grouped_weight.contiguous();
    at::Tensor shares;
    const at::Tensor sums = tap_sums_cuda(x, s, path, nullptr, nullptr, &weight, &shares, false, keep_sums);
    const at::Tensor row_shares = shares.view({s.batch, s.in_channels, s.out_channels});
    bias_lse(shares_added_in_lse(s) ? row_shares : row_shares.sum(1), bias_operands(conv_bias, bias),
             kind_of(x.scalar_type()), s.scale, out.data_ptr(), resident_split_blocks(x.get_device()), stream);
    return {out, sums};
  }
  at::Tensor cells, sums;
  bool cells_kept_only = false;
  const bool over_cells = gemm_over_cells(path, s);
  // The GEMM's weight over cells first, and the tap kernels' reader of x beside it (launch.cuh), as the split
  // strategy's W.sum and reader: it took 6-9 us of r10, r20 and r30's padded forwards (H200) in a row before. Over
  // taps, by the same kernel over tap_cut's cells (each tap's own weight, tap_weight_rows' layout) where
  // plan::tap_weight_way says: ATen's copy between the combine and the GEMM took 1.6-5.6 us of the 20-70 us forwards
  // of r02, r10, r41 and r51 (H100, docs/limits.md §114, §116). Not beside a weight made contiguous for that launch:
  // the copy, freed on return while still read, could become the reader's outputs.
  const plan::TapWeightWay tap_way =
      over_cells ? plan::TapWeightWay::kAheadBeside
                 : plan::tap_weight_way(path.kernels, static_cast<int64_t>(x.nbytes()),
                                        s.in_channels * s.kernel_h * s.kernel_w * s.out_channels *
                                            static_cast<int64_t>(c10::elementSize(
                                                accumulation_type(grouped_weight.scalar_type()))));
  const auto make_weight_rows = [&] {
    return over_cells ? cell_weight_cuda(grouped_weight, s)
                      : cell_weight_cuda(grouped_weight, s, tap_cut(s, 0), tap_cut(s, 1));
  };
  const bool ahead = tap_way == plan::TapWeightWay::kAheadBeside || tap_way == plan::TapWeightWay::kAheadWaits;
  at::Tensor weight_rows = ahead ? make_weight_rows() : at::Tensor();
  const bool beside_weight_rows = weight_rows.defined() && grouped_weight.is_contiguous() &&
                                  tap_way == plan::TapWeightWay::kAheadBeside;
  if (over_cells && !keep_sums && cells_are_elements(s)) {
    // The cells are x's values: the GEMM reads x where it lies (x of the accumulation type), or its widened copy.
    // H200, sweep shape r50 [9319, 1244, 2, 2] float16 at padding 1: the small-plane kernel's taps took 232 us, bound
    // by its instructions, where the whole padding-0 forward took 73 (docs/limits.md §61).
    cells = element_cells_cuda(x, s, beside_weight_rows);
  } else {
    sums = tap_sums_cuda(x, s, path, over_cells ? &cells : nullptr, &cells_kept_only, nullptr, nullptr,
                         beside_weight_rows, keep_sums || !over_cells);
  }
  if (tap_way == plan::TapWeightWay::kAfter) weight_rows = make_weight_rows();
  cropped_gemm_forward(x, cropped_gemm_operands(over_cells, cells, cells_kept_only, sums, grouped_weight, s,
                                                weight_rows),
                       conv_bias, bias, s, out, stream);
  return {out, sums};
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x, const at::Tensor& grouped_weight,
                                                const c10::optional<at::Tensor>& conv_bias, const at::Tensor& bias,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef output_padding, at::IntArrayRef dilation,
                                                int64_t groups, bool keep_sums) {
  const ForwardShape s =
      check_forward_args(x, grouped_weight, conv_bias, bias, stride, padding, output_padding, dilation, groups);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out, sums;
  if (s.conv.crops()) {
    std::tie(out, sums) = forward_cropped_cuda(x, grouped_weight, conv_bias, bias, s, keep_sums);
  } else {
    // Groups: the same one-pass kernels, whose W.sum is zero between groups (grouped_taps_offset): summed from the
    // grouped weight where it lies. Building the dense weight first was two launches ahead of the reader: 2-7% on
    // most shapes measured, up to 1.4x where the weight is large beside x (docs/limits.md §29, §35).
    out = at::empty({s.batch, 1}, x.options());
    // Made without keep_sums too: the readers write them for the epilogue (the in-place epilogue copies x's values;
    // the narrow one summing x's planes leaves them unwritten).
    sums = at::empty({s.batch, s.in_channels}, x.options().dtype(accumulation_type(x.scalar_type())));
    if (s.batch > 0) {
      const bool grouped = s.conv.groups > 1;
      // Grouped, the sums are regroup_nan_rows' rows, so every plan writes them.
      forward_planned(x, grouped_weight, conv_bias, bias, s, out, sums, keep_sums || grouped);
      if (grouped) {
        regroup_nan_rows(sums, grouped_weight, s.conv.groups, conv_bias, bias, kind_of(x.scalar_type()), s.scale,
                         out, c10::cuda::getCurrentCUDAStream().stream());
      }
    }
  }
  return {out, keep_sums ? sums : no_sums(x)};
}

at::Tensor sum_hw_cuda(const at::Tensor& x) {
  check_sum_hw_args(x);
  const c10::cuda::CUDAGuard guard(x.device());
  const NoAutocast no_autocast;
  return plane_sums_cuda(x);
}

// explain()'s "cublas_factors" for a GEMM of sums [batch, channels] x W.sum [channels, c_out] for x's dtype, in a
// problem of `problem_bytes` as the forward passes run_epilogue: how cuBLAS's epilogue multiplies them where the
// plan takes it (cublas_epilogue), "bf16_pieces" or "as_is".
std::string cublas_factors_json(const at::Tensor& x, int64_t batch, int64_t channels, int64_t c_out,
                                int64_t problem_bytes) {
  const int64_t acc_bytes = c10::elementSize(accumulation_type(x.scalar_type()));
  const bool pieces = cublas_epilogue(kind_of(x.scalar_type()), batch, channels, c_out, acc_bytes, problem_bytes,
                                      x.get_device()).pieces;
  return std::string("\"cublas_factors\": \"") + (pieces ? "bf16_pieces" : "as_is") + "\", ";
}

// The plan forward(x, weight, settings) would run, as JSON (fusedlse_cuda.explain): the planner's for padding 0,
// the cropped path's otherwise.
std::string explain_cuda(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation,
                         int64_t groups) {
  const ForwardShape s = check_shape_args(x, weight, stride, padding, output_padding, dilation, groups);
  const std::string groups_json = "{\"groups\": " + std::to_string(groups) + ", ";
  if (s.conv.crops()) {
    const TapPath path = tap_path(x, s);
    if (const std::optional<ElementGemm> elements = element_gemm(x, s, path)) {
      const ForwardShape& g = elements->shape;
      const plan::DeviceProps props = device_props(x.get_device());
      const int64_t acc_bytes = c10::elementSize(accumulation_type(x.scalar_type()));
      return groups_json +
             cublas_factors_json(x, g.batch, g.in_channels, g.out_channels,
                                 (g.batch + g.out_channels) * g.in_channels * acc_bytes) +
             "\"strategy\": \"cropped\", " + tap_path_fields(path, x, s, false, false) +
             ", \"whole_planes\": false, \"cells_in_x\": true, \"gemm\": " +
             plan::to_json(elements->plan, elements->problem, props) +
             ", \"gemm_over\": \"elements\", \"gemm_depth\": " + std::to_string(g.in_channels) +
             ", \"why\": \"padding crops the output: a GEMM over x's elements where they lie (each batch's values one "
             "run of memory, every element kept by some tap), each element's weight the sum of the taps' that keep it, "
             "its rows in x's memory order; as a padding-0 forward of 1 x 1 planes (its plan under 'gemm': for 16-bit "
             "x the narrow epilogue loading x itself, else the epilogue over x's rows): " +
             (cells_are_elements(s) ? "the cells are x's elements"
                                    : "predicted faster than the tap readers, or near the padding-0 forward") +
             " (element_gemm); tap_sums (made only where a backward will run, in a pass of their own) by " +
             path.why + "\"}";
    }
    if (tap_shares_apply(x, weight, s, path)) {
      const bool in_lse = shares_added_in_lse(s);
      return groups_json + "\"strategy\": \"cropped\", " + tap_path_fields(path, x, s, true, false) +
             ", \"gemm\": {\"strategy\": "
             "\"tap_shares\", \"shares_added\": \"" + (in_lse ? "in_lse" : "torch_sum") + "\"}, \"why\": \"padding "
             "crops the output: per-tap sums of x, then their GEMM over C_in * kH * kW: each plane's share by the warp "
             "that adds its taps, " + (in_lse ? "then the shares added over channels, the biases and logsumexp in one "
             "launch" : "the shares added over channels by torch's sum, then the biases and logsumexp") +
             "; tap_sums by " + path.why + "\"}";
    }
    // The GEMM's plan, for sums of the shape forward_cropped_cuda passes it (the weight's rows are built contiguous).
    const bool cells = gemm_over_cells(path, s);
    // Where no backward will run (explain's forward keeps no sums): cells that are x's elements are read by the GEMM
    // alone; else those of whole planes by the padding-0 readers.
    const bool cells_in_x = cells && cells_are_elements(s);
    const bool whole_planes = cells && !cells_in_x && path.whole_planes;
    const ForwardShape g = cropped_gemm_shape(s, cropped_gemm_per_channel(s, cells));
    const at::Tensor gemm_x =
        at::empty({g.batch, g.in_channels, 1, 1}, x.options().dtype(accumulation_type(x.scalar_type())));
    const plan::Problem gemm = cropped_gemm_problem(x, gemm_x, g.out_channels);
    const plan::DeviceProps props = device_props(x.get_device());
    // forward_cropped_cuda's problem for run_epilogue: its GEMM's operands, both in the accumulation type.
    const int64_t gemm_bytes = (g.batch + g.out_channels) * g.in_channels * gemm_x.element_size();
    return groups_json + cublas_factors_json(x, g.batch, g.in_channels, g.out_channels, gemm_bytes) +
           "\"strategy\": \"cropped\", " + tap_path_fields(path, x, s, false, cells) +
           ", \"whole_planes\": " + (whole_planes ? "true" : "false") +
           ", \"cells_in_x\": " + (cells_in_x ? "true" : "false") +
           ", \"gemm\": " + plan::to_json(plan::choose(gemm, props), gemm, props) +
           ", \"gemm_over\": \"" + (cells ? "cells" : "taps") + "\", \"gemm_depth\": " +
           std::to_string(g.in_channels) + ", \"why\": \"padding crops the output: per-tap sums of x, then a GEMM " +
           (cells ? "over each plane's kept cells (pairs of row and column segments some tap keeps; fewer of them "
                    "than taps, or as many and each one element of x; the cells' weight built in one pass, or small "
                    "beside x), each cell's weight the sum of the taps' that keep it"
                      : "over C_in * kH * kW tap sums") +
           ", as a padding-0 forward of 1 x 1 planes (its plan under 'gemm'; a split plan runs its epilogue alone, "
           "the rows being the sums already); tap_sums by " + path.why +
           (whole_planes ? " (no tap crops a plane in part: each plane's sum by the padding-0 readers is its one "
                           "cell; where a backward will run, the tap sums are added from the cells)"
            : cells_in_x ? " (each cell one element of x: where no backward will run, the GEMM reads x's values "
                           "themselves, a widened copy of them for 16-bit x, and no tap sums are made)"
                         : "") +
           "\"}";
  }
  const plan::Problem problem = problem_of(x, s.out_channels, s.kernel_h * s.kernel_w);
  const plan::DeviceProps props = device_props(x.get_device());
  const plan::Plan chosen = plan_of_call(weight, groups, problem, props);
  return groups_json + cublas_factors_json(x, s.batch, s.in_channels, s.out_channels, x.nbytes() + weight.nbytes()) +
         plan::to_json(chosen, problem, props).substr(1);
}

at::Tensor gemm_lse_cuda(const at::Tensor& sums_in, const at::Tensor& weight_sum_in, const at::Tensor& total_bias_in,
                         double scale) {
  check_gemm_lse_args(sums_in, weight_sum_in, total_bias_in);
  const c10::cuda::CUDAGuard guard(sums_in.device());
  at::Tensor out = at::empty({sums_in.size(0), 1}, sums_in.options());
  if (out.numel() == 0) return out;
  const at::Tensor total_bias = total_bias_in.reshape({-1}).contiguous();
  const at::Tensor sums = sums_in.contiguous(), weight_sum = weight_sum_in.contiguous();
  const GemmLseArgs operands = gemm_lse_operands(sums, weight_sum, nullptr, total_bias.data_ptr(), 1,
                                                 kind_of(sums.scalar_type()), scale, out.data_ptr());
  const int64_t acc_bytes = sums.element_size();
  const int device = sums.get_device();
  const int64_t workspace_bytes =
      tiled_epilogue(operands.kind, operands.batch, operands.channels, operands.c_out, acc_bytes, device)
          .workspace_bytes;
  Scratch workspace(sums, {workspace_bytes});
  tiled_gemm_lse(operands, acc_bytes, device, workspace.take(workspace_bytes),
                 c10::cuda::getCurrentCUDAStream().stream());
  return out;
}

// broadcast_hw's arguments for writing `out` (rows or cells still to set).
BroadcastArgs broadcast_args(const at::Tensor& out, bool channels_last) {
  BroadcastArgs a{};
  a.kind = kind_of(out.scalar_type());
  a.channels_last = channels_last;
  a.out = out.data_ptr();
  a.batch = out.size(0);
  a.channels = out.size(1);
  a.height = out.size(2);
  a.width = out.size(3);
  a.plane = a.height * a.width;
  // One trip of kBroadcastVectorsPerThread stores per thread, the grid as large as that needs: a grid-stride loop
  // over a grid that just filled the device wrote 1 GiB at 4.27 TB/s where this reached 4.60, as fast as
  // cudaMemsetAsync (H200, bench/experiments/write_stores.cu).
  const int64_t vectors = ceil_div(out.numel() * out.element_size(), 16);
  a.blocks = std::max<int64_t>(1, ceil_div(vectors, kBlockThreads * kBroadcastVectorsPerThread));
  return a;
}

// out [B, C, H, W] (channels-last or contiguous, 16-byte aligned) = rows [B, C] (accumulation type) broadcast over
// every (h, w), by broadcast_hw_kernel.
void broadcast_rows(const at::Tensor& rows_in, at::Tensor& out, bool channels_last, cudaStream_t stream) {
  const at::Tensor rows = rows_in.contiguous();
  BroadcastArgs a = broadcast_args(out, channels_last);
  a.rows = rows.data_ptr();
  C10_CUDA_CHECK(launch_broadcast_hw(a, stream));
}

at::Tensor broadcast_hw_cuda(const at::Tensor& rows_in, int64_t height, int64_t width, at::ScalarType dtype,
                             bool channels_last) {
  at::Tensor out = empty_broadcast_hw(rows_in, height, width, dtype, channels_last);
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(rows_in.device());
  broadcast_rows(rows_in, out, channels_last, c10::cuda::getCurrentCUDAStream().stream());
  return out;
}

at::Tensor tap_sums_op_cuda(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef output_padding, at::IntArrayRef dilation) {
  const ForwardShape s = check_tap_sums_args(x, kernel_size, stride, padding, output_padding, dilation);
  const c10::cuda::CUDAGuard guard(x.device());
  const NoAutocast no_autocast;
  return tap_sums_cuda(x, s, tap_path(x, s));
}

at::Tensor broadcast_taps_op_cuda(const at::Tensor& taps_in, int64_t height, int64_t width, at::ScalarType dtype,
                                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
                                  at::IntArrayRef dilation, bool channels_last) {
  const ForwardShape s = check_broadcast_taps_args(taps_in, height, width, dtype, stride, padding, output_padding,
                                                   dilation);
  const c10::cuda::CUDAGuard guard(taps_in.device());
  const NoAutocast no_autocast;
  at::Tensor out = empty_broadcast_taps(taps_in, s, dtype, channels_last);
  if (out.numel() == 0) return out;
  const auto rows = tap_geometry(cut_of(s, 0)), cols = tap_geometry(cut_of(s, 1));
  if (!rows || !cols) {
    broadcast_taps(taps_in, s, out);
    return out;
  }
  // Each segment pair's value (cell-major), then every element of grad_x once from them, by broadcast_hw's stores:
  // writing the middle value everywhere and then the border rows and columns apart took 0.72-0.74 of torch's fill
  // at the headline with padding 1 (4-byte stores a row apart after the bulk write; docs/limits.md §30).
  const at::Tensor taps = taps_in.contiguous();
  const int64_t planes = s.batch * s.in_channels;
  const at::Tensor cells = at::empty({rows->segments * cols->segments, planes}, taps.options());
  TapBroadcastArgs spread{};
  spread.kind = kind_of(dtype);
  spread.taps = taps.data_ptr();
  spread.cells = cells.data_ptr();
  spread.batch = s.batch;
  spread.channels = s.in_channels;
  spread.rows = *rows;
  spread.cols = *cols;
  spread.blocks = std::max<int64_t>(
      1, std::min(resident_split_blocks(taps.get_device()), ceil_div(cells.numel(), kBlockThreads)));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  C10_CUDA_CHECK(launch_tap_spread(spread, stream));
  BroadcastArgs a = broadcast_args(out, channels_last);
  a.cells = cells.data_ptr();
  a.cut_rows = *rows;
  a.cut_cols = *cols;
  // The middle cell, where both dimensions have a middle segment.
  const bool middle_col = width > cols->head + cols->tail;
  if (height > rows->head + rows->tail && middle_col) {
    a.middle_row_begin = rows->head;
    a.middle_row_end = height - rows->tail;
    a.middle_col_begin = cols->head;
    a.middle_col_end = width - cols->tail;
  }
  const int64_t vec = 16 / out.element_size(), row_vectors = width / vec;
  // broadcast_cut_rows_kernel's lane 0 keeps the first vector's values and the other lanes the last one's: a row of
  // 32k + 1 vectors, whose last vector lane 0 would store too, takes the flat walk, as do rows of 2^31 elements and
  // more (the kernel's columns are 32-bit).
  if (!channels_last && width % vec == 0 && row_vectors >= 32 && row_vectors % 32 != 1 &&
      width < (int64_t{1} << 31) && middle_col && cols->head <= vec && cols->tail <= vec) {
    // About kBroadcastVectorsPerThread stores per lane, as the flat walk's one-shot grid gives each thread.
    a.rows_per_warp = std::max<int64_t>(1, 32 * kBroadcastVectorsPerThread / row_vectors);
    if (planes * height < (int64_t{1} << 31)) a.height_divisor = fast_divisor(static_cast<uint32_t>(height));
    a.blocks = ceil_div(planes * height, a.rows_per_warp * kWarpsPerBlock);
  }
  if (out.numel() < (int64_t{1} << 31)) {
    a.plane_divisor = fast_divisor(static_cast<uint32_t>(a.plane));
    a.width_divisor = fast_divisor(static_cast<uint32_t>(a.width));
    a.channels_divisor = fast_divisor(static_cast<uint32_t>(a.channels));
  }
  C10_CUDA_CHECK(launch_broadcast_hw(a, stream));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedlse, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("sum_hw", &sum_hw_cuda);
  m.impl("gemm_lse", &gemm_lse_cuda);
  m.impl("broadcast_hw", &broadcast_hw_cuda);
  m.impl("explain", &explain_cuda);
  m.impl("tap_sums", &tap_sums_op_cuda);
  m.impl("broadcast_taps", &broadcast_taps_op_cuda);
}

}  // namespace fusedlse
