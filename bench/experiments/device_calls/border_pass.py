"""A standalone test of one way to read padding's border pieces (docs/limits.md §98): a warp per contiguous plane
sums its top and bottom R rows and its middle rows' span by 16-byte loads (every element read once, as padding 0's
walk reads it), then loads each row's R first and last elements again (lines the warp just read), and takes
1 + (R_top + R_bottom) + (R_left + R_right) warp sums. Every tap's kept rectangle is a fixed sum of its outputs, so
the padded GEMM can run over them with a folded weight ("pipe": the pass, torch's addmm, logsumexp). Timed against
the same kernel summing whole planes (padding 0's work), torch's flat sum of x's bytes and x.sum((2, 3)), and, where
fusedlse is built, its forward at padding 0-3 and the pipe. python border_pass.py OUT.jsonl"""
import json
import os
import sys

import torch
from torch.utils.cpp_extension import load_inline

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
try:  # without a built module (callX.sh with no TREE): the pass against padding 0's work and torch's sums only
    import fusedlse_cuda  # noqa: E402
    from fusedlse_cuda import reference  # noqa: E402
    from fusedlse_cuda.ops import _kept_masks  # noqa: E402
    from fusedlse_cuda.shape import conv_settings, output_size  # noqa: E402
except ImportError:
    fusedlse_cuda = None
from timing import median_ms  # noqa: E402

CUDA = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float as_float(float v) { return v; }
__device__ __forceinline__ float as_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// A 16-byte vector's elements summed in order, by its words (no address of the vector: a stack frame otherwise).
__device__ __forceinline__ float word_sum(unsigned w, float) { return __uint_as_float(w); }
__device__ __forceinline__ float word_sum(unsigned w, __half) {
  return __half2float(__ushort_as_half((unsigned short)(w & 0xffffu))) +
         __half2float(__ushort_as_half((unsigned short)(w >> 16)));
}
__device__ __forceinline__ float word_sum(unsigned w, __nv_bfloat16) {
  return __uint_as_float(w << 16) + __uint_as_float(w & 0xffff0000u); }
template <typename T> __device__ __forceinline__ float vector_sum(uint4 v) {
  return word_sum(v.x, T()) + word_sum(v.y, T()) + word_sum(v.z, T()) + word_sum(v.w, T());
}

template <typename T> __device__ __forceinline__ T load_scalar(const T* p) { return __ldg(p); }
template <> __device__ __forceinline__ __half load_scalar(const __half* p) {
  unsigned short u = __ldg(reinterpret_cast<const unsigned short*>(p)); return __ushort_as_half(u); }
template <> __device__ __forceinline__ __nv_bfloat16 load_scalar(const __nv_bfloat16* p) {
  unsigned short u = __ldg(reinterpret_cast<const unsigned short*>(p)); return __ushort_as_bfloat16(u); }

// This lane's share of n contiguous elements from p: 16-byte loads over the aligned middle, 4 in flight.
template <typename T> __device__ __forceinline__ float range_sum(const T* p, int n, int lane) {
  constexpr int kVec = 16 / sizeof(T);
  int head = int(((16 - (reinterpret_cast<uintptr_t>(p) & 15)) & 15) / sizeof(T));
  head = min(head, n);
  const int vecs = (n - head) / kVec, tail = head + vecs * kVec;
  float s = 0.f;
  if (lane < head) s += as_float(load_scalar(p + lane));
  const uint4* v = reinterpret_cast<const uint4*>(p + head);
  int i = lane;
  for (; i + 96 < vecs; i += 128) {
    uint4 a = __ldg(v + i), b = __ldg(v + i + 32), c = __ldg(v + i + 64), d = __ldg(v + i + 96);
    s += vector_sum<T>(a) + vector_sum<T>(b) + vector_sum<T>(c) + vector_sum<T>(d);
  }
  for (; i < vecs; i += 32) s += vector_sum<T>(__ldg(v + i));
  if (tail + lane < n) s += as_float(load_scalar(p + tail + lane));
  return s;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// x: [planes, H, W] contiguous. out: [planes, 1] (kBorders false: each plane's sum) or
// [planes, 1 + rt + rb + (rt + 1 + rb) * (rl + rr)] (total, the border rows' sums, then the edge sums by row group
// (top rows, the middle rows together, bottom rows) and column (left, then right)).
template <typename T, int kR, bool kBorders>
__global__ void __launch_bounds__(256) border_pass_kernel(const T* __restrict__ x, int64_t planes, int H, int W,
                                                          int rt, int rb, int rl, int rr, float* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int edges = rl + rr, width = kBorders ? 1 + rt + rb + (rt + 1 + rb) * edges : 1;
  for (int64_t p = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; p < planes; p += warps) {
    const T* plane = x + p * H * W;
    float* o = out + p * width;
    if constexpr (!kBorders) {
      const float s = warp_sum(range_sum(plane, H * W, lane));
      if (lane == 0) o[0] = s;
    } else {
      float rows[2 * kR];
#pragma unroll
      for (int i = 0; i < 2 * kR; ++i) {
        const int r = i < kR ? i : H - 2 * kR + i;
        rows[i] = (i < rt || (i >= kR && i - kR >= kR - rb)) ? range_sum(plane + r * W, W, lane) : 0.f;
      }
      float total = range_sum(plane + rt * W, (H - rt - rb) * W, lane);
      float middle_edges[2 * kR] = {};
      for (int r = lane; r < H; r += 32) {
        const T* row = plane + r * W;
        float e[2 * kR];
#pragma unroll
        for (int j = 0; j < 2 * kR; ++j) {
          const bool left = j < kR;
          const int col = left ? j : W - 2 * kR + j;
          e[j] = (left ? j < rl : j - kR >= kR - rr) ? as_float(load_scalar(row + col)) : 0.f;
        }
        const bool top = r < rt, bottom = r >= H - rb;
        if (top || bottom) {
          float* group = o + 1 + rt + rb + (top ? r : rt + 1 + r - (H - rb)) * edges;
#pragma unroll
          for (int j = 0; j < 2 * kR; ++j) {
            if (j < rl) group[j] = e[j];
            if (j >= kR && j - kR >= kR - rr) group[rl + j - (2 * kR - rr)] = e[j];
          }
        } else {
#pragma unroll
          for (int j = 0; j < 2 * kR; ++j) middle_edges[j] += e[j];
        }
      }
#pragma unroll
      for (int i = 0; i < 2 * kR; ++i) total += rows[i];
      total = warp_sum(total);
      if (lane == 0) o[0] = total;
#pragma unroll
      for (int i = 0; i < 2 * kR; ++i) {
        const bool here = i < kR ? i < rt : i - kR >= kR - rb;
        if (!here) continue;
        const float s = warp_sum(rows[i]);
        if (lane == 0) o[1 + (i < kR ? i : rt + i - kR - (kR - rb))] = s;
      }
      float* middle = o + 1 + rt + rb + rt * edges;
#pragma unroll
      for (int j = 0; j < 2 * kR; ++j) {
        const bool here = j < kR ? j < rl : j - kR >= kR - rr;
        if (!here) continue;
        const float s = warp_sum(middle_edges[j]);
        if (lane == 0) middle[j < kR ? j : rl + j - kR - (kR - rr)] = s;
      }
    }
  }
}

template <typename T, int kR> void launch(const torch::Tensor& x, int64_t planes, int H, int W, int r, bool borders,
                                          torch::Tensor& out, int blocks) {
  auto stream = c10::cuda::getCurrentCUDAStream().stream();
  const T* p = reinterpret_cast<const T*>(x.data_ptr());
  if (borders) border_pass_kernel<T, kR, true><<<blocks, 256, 0, stream>>>(p, planes, H, W, r, r, r, r,
                                                                           out.data_ptr<float>());
  else border_pass_kernel<T, kR, false><<<blocks, 256, 0, stream>>>(p, planes, H, W, r, r, r, r,
                                                                    out.data_ptr<float>());
}

torch::Tensor border_pass(torch::Tensor x, int64_t r, bool borders, int64_t blocks) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous() && x.dim() == 4 && r >= 1 && r <= 3);
  const int64_t planes = x.size(0) * x.size(1);
  const int H = x.size(2), W = x.size(3);
  const int64_t width = borders ? 1 + 2 * r + (2 * r + 1) * 2 * r : 1;
  auto out = torch::empty({planes, width}, x.options().dtype(torch::kFloat));
  const int R = borders ? int(r) : 1;
#define CASE(T) \
  if (R == 1) launch<T, 1>(x, planes, H, W, R, borders, out, blocks); \
  else if (R == 2) launch<T, 2>(x, planes, H, W, R, borders, out, blocks); \
  else launch<T, 3>(x, planes, H, W, R, borders, out, blocks);
  if (x.scalar_type() == torch::kFloat) { CASE(float) }
  else if (x.scalar_type() == torch::kHalf) { CASE(__half) }
  else { CASE(__nv_bfloat16) }
  return out;
}
"""
CPP = "torch::Tensor border_pass(torch::Tensor x, int64_t r, bool borders, int64_t blocks);"

DTYPES = dict(f32=torch.float32, f16=torch.float16, bf16=torch.bfloat16)
# Contiguous versions of the padded sweep's rows of a few hundred to a few thousand elements a plane (§82, §80).
SHAPES = [("r33", 7000, 40, 6, 168, "bf16"), ("r16", 1378, 166, 25, 39, "f32"), ("r46", 96, 256, 100, 6, "f16"),
          ("r18", 70, 445, 54, 64, "f16"), ("r41", 3378, 2, 14, 203, "bf16"), ("r49", 137, 19, 109, 244, "bf16"),
          ("r38c", 9, 73, 229, 153, "f16"), ("r57c", 6834, 2, 365, 39, "bf16"), ("r10c", 4844, 2, 31, 44, "f16"),
          ("r08c", 1035, 50, 4, 18, "f32"), ("r37c", 24, 1439, 165, 45, "bf16"), ("r13c", 18415, 8, 5, 6, "bf16")]


def truth(x, r):
    """The border pass's outputs in float64, from x's values."""
    planes = x.double().flatten(0, 1)
    h = planes.shape[1]
    groups = [planes[:, i:i + 1] for i in range(r)] + [planes[:, r:h - r]] + \
        [planes[:, h - r + i:h - r + i + 1] for i in range(r)]
    cols = list(range(r)) + [planes.shape[2] - r + j for j in range(r)]
    edges = torch.stack([g[:, :, c].sum(1) for g in groups for c in cols], 1)
    rows = torch.stack([planes[:, i].sum(1) for i in range(r)] + [planes[:, h - r + i].sum(1) for i in range(r)], 1)
    return torch.cat([planes.sum((1, 2))[:, None], rows, edges], 1)


def piece_matrix(h, w, r):
    """The border pass's outputs as 0/1 rows over a plane's h * w values (truth's order)."""
    eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    return truth(eye, r).T  # [pieces, h * w]


def tap_matrix(h, w, kernel, settings):
    """Each tap's kept rectangle as 0/1 rows over a plane's h * w values: the product's masks (ops._kept_masks)."""
    rows, cols = _kept_masks(h, w, kernel, settings, torch.float64, torch.device("cpu"))
    return torch.einsum("th,uw->tuhw", rows, cols).reshape(rows.shape[0] * cols.shape[0], h * w)


def folded_weight(weight, h, w, r, padding):
    """[C_in * pieces, C_out]: each piece's weight, the taps' sums written over the pieces (least squares, checked
    exact), divided by the output's area, so that logits = pieces @ it."""
    kh, kw = weight.shape[2:]
    settings = conv_settings(padding=padding)
    # On a plane of at most 2r + 3 rows and columns: at stride 1 the taps' rectangles and the pieces lie the same
    # distances from the plane's edges (and an identity over a large plane's values would not fit in memory).
    taps = tap_matrix(min(h, 2 * r + 3), min(w, 2 * r + 3), (kh, kw), settings)
    pieces = piece_matrix(min(h, 2 * r + 3), min(w, 2 * r + 3), r)
    k = taps @ torch.linalg.pinv(pieces)  # [taps, pieces]
    assert torch.allclose(k @ pieces, taps, atol=1e-9), "the taps are not sums of the pieces"
    out_h, out_w = output_size(h, w, kh, kw, settings["stride"], settings["output_padding"], settings["dilation"],
                               settings["padding"])
    wt = weight.double().flatten(2)  # [C_in, C_out, taps]
    return (torch.einsum("tp,cnt->cpn", k.to(wt.device), wt) / (out_h * out_w)).flatten(0, 1)


def main():
    ext = load_inline("border_pass_ext", [CPP], [CUDA], functions=["border_pass"], verbose=False,
                      extra_cuda_cflags=["-O3", "-gencode=arch=compute_90,code=sm_90", "-Xptxas=-v"])
    blocks = torch.cuda.get_device_properties(0).multi_processor_count * 8
    with open(sys.argv[1], "a") as f:
        for name, b, c, h, w, dtype_name in SHAPES:
            x = torch.randn(b, c, h, w, device="cuda", dtype=DTYPES[dtype_name])
            weight = torch.randn(c, 16, 3, 3, device="cuda", dtype=x.dtype)
            bias = torch.randn(16, 1, 1, device="cuda", dtype=x.dtype)
            flat = x.view(-1)
            row = dict(name=name, shape=[b, c, h, w], dtype=dtype_name, us={}, err={})
            plane_sums = ext.border_pass(x, 1, False, blocks)[:, 0].double()
            row["err"]["total"] = float((plane_sums - x.double().sum((2, 3)).flatten()).abs().max())
            for r in (1, 2, 3):
                if h <= 2 * r or w <= 2 * r:
                    continue
                got = ext.border_pass(x, r, True, blocks).double()
                want = truth(x, r)
                row["err"][f"r{r}"] = float(((got - want).abs() / (want.abs() + 1)).max())
            pipelines = {}
            for r in (1, 2, 3) if fusedlse_cuda is not None else ():
                if h <= 2 * r or w <= 2 * r:
                    continue
                wp = folded_weight(weight, h, w, r, r).float()
                total_bias = bias.float().reshape(1, -1)

                def pipeline(r=r, wp=wp, total_bias=total_bias):
                    pieces = ext.border_pass(x, r, True, blocks).view(b, -1)
                    return 10 * torch.logsumexp(torch.addmm(total_bias, pieces, wp), 1, keepdim=True)
                pipelines[r] = pipeline
                want = reference.truth(x, weight, None, bias, padding=r)
                got, want = pipeline().double().cpu(), want.cpu()
                row["err"][f"pipe_r{r}"] = float(((got - want).abs() / (want.abs() + 1)).max())
            for _ in range(3):
                times = {"flat_sum": lambda: flat.sum(), "plane_pass": lambda: ext.border_pass(x, 1, False, blocks),
                         "xsum_hw": lambda: x.sum((2, 3))}
                if fusedlse_cuda is not None:
                    times["fused_p0"] = lambda: fusedlse_cuda.forward(x, weight, None, bias)
                for r in (1, 2, 3):
                    if h > 2 * r and w > 2 * r:
                        times[f"border_r{r}"] = (lambda r=r: ext.border_pass(x, r, True, blocks))
                        if fusedlse_cuda is not None:
                            times[f"fused_p{r}"] = (lambda r=r: fusedlse_cuda.forward(x, weight, None, bias,
                                                                                       padding=r))
                            times[f"pipe_r{r}"] = pipelines[r]
                for key, fn in times.items():
                    t = median_ms(fn, 10, 50) * 1e3
                    row["us"][key] = round(min(row["us"].get(key, t), t), 2)
            f.write(json.dumps(row) + "\n")
            f.flush()
            us = row["us"]
            # The pass over padding 0's work, and fusedlse's padded forward over its padding-0 one, by R
            ratios = {f"r{r}": (round(us[f"border_r{r}"] / us["plane_pass"], 3),
                                round(us[f"fused_p{r}"] / us["fused_p0"], 3) if "fused_p0" in us else None)
                      for r in (1, 2, 3) if f"border_r{r}" in us}
            print(name, us, ratios, {k: f"{v:.1e}" for k, v in row["err"].items()}, flush=True)
            del x, flat
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
