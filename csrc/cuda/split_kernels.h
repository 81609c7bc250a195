// Plain-C++ interface to the split strategy's own kernels (split_kernels.cu); see plan.h for the strategy.
#pragma once

#include "fused_kernels.h"

#include <cstdint>
#include <cuda_runtime_api.h>

namespace fusedlse {

constexpr int64_t kSplitThreads = 256;  // per block, in every split kernel

// sums[b, c] = sum over h, w of x[b, c, h, w], for any strides: one thread per plane.
struct TinyPlanesArgs {
  ScalarKind kind;
  const void* x;   // [B, C, H, W] in `kind`, element (b, c, h, w) at b*stride_b + c*stride_c + h*stride_h + w*stride_w
  void* sums;      // [B, C] contiguous, accumulation type
  int64_t batch, channels, height, width;
  int64_t stride_b, stride_c, stride_h, stride_w;
};

// out[b] = 10 * logsumexp_n(scale * logits[b, n] + conv_bias[n] + bias[n * bias_stride]), torch.logsumexp's
// semantics for infinities and NaN.
struct BiasLseArgs {
  ScalarKind kind;        // of conv_bias, bias and out; logits are its accumulation type
  const void* logits;     // [B, C_out] contiguous, accumulation type
  const void* conv_bias;  // [C_out] contiguous, or nullptr
  const void* bias;       // C_out elements, element n at n * bias_stride (0: one value for every n)
  int64_t bias_stride;
  void* out;              // [B]
  int64_t batch, c_out;
  double scale;           // 1 / (H_out * W_out)
};

cudaError_t launch_tiny_planes(const TinyPlanesArgs& args, int64_t max_blocks, cudaStream_t stream);
cudaError_t launch_bias_lse(const BiasLseArgs& args, int64_t max_blocks, cudaStream_t stream);

}  // namespace fusedlse
