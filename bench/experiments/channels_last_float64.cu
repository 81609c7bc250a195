// How fast can channels-last float64 x of many channels be summed over its pixels? r23 of the sweep ([15, 686, 613,
// 1] float64 channels-last, 48 MB) reads x by torch's reduction (19.8 us under Nsight Compute, 2.5 TB/s; docs/limits.md
// section 70), and fusedlse's channel-rows reader was slower there past 256 channels (its scalar walk 41.5 us against
// torch's 34.3 on 64 MiB of 686 channels, its vector walk slower still, section 71). Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/experiments/channels_last_float64.cu -o /tmp/cl64 && /tmp/cl64
//
// x [B][P][C] float64 (pixel stride C, batch stride P x C), sums [B][C]. Each walk cuts every batch's pixels into
// `chunks` chunks, a block per (chunk, batch), and leaves partial sums [chunks][B][C] that add_chunks adds in chunk
// order (timed with the walk: "+add"):
//   vectors  a thread per 16-byte vector (2 channels) of a pixel row, T threads striding the row's C / 2 vectors, U
//            pixels' loads in flight
//   scalars  a thread per channel, T threads striding the row's C channels, U pixels' loads in flight
// Against a flat read of the same bytes (16-byte loads, grid-stride, every SM). Timing: CUDA events around the
// launches alone, the L2 flushed (a 256 MiB memset) before each rep; read_bench.cuh's median of 30.
//
// Its sums are exact (quarters), so any order matches; WRONG marks a walk that does not.
//
// Run on the H200 on 2026-12-04 (us; best with the add / the walk alone / the flat read): r23 [15, 686, 613] 25.3 /
// 20.6 (vectors, 352 threads, 8 loads, 31 chunks) / 20.3; [31, 686, 400] 29.6 / 25.8 / 25.9; [3, 686, 3600] 33.6 /
// 27.7 (64 chunks, the most tried) / 22.9; [15, 1440, 400] 33.3 / 29.3 / 25.8; [66, 320, 400] 30.5 / 27.4 / 25.4.
// The scalar walks took 26.6-190 us. The vector walk went into the channel-rows reader as the pixel-vector walk in
// chunks (docs/limits.md section 74): in the forward it reads r23's x no faster than torch's reduction, and C 320,
// 384, 512 and 2048 at 0.75-0.92 of its time.
#include <cmath>

#include "read_bench.cuh"  // CHECK, median_ms, device_and_flush

// partial [chunks][B][C]: block (chunk, b) sums pixels [chunk x chunk_pixels, ...) of batch b.
template <int kLoads>
__global__ void vectors_walk(const double* __restrict__ x, double* __restrict__ partial, int batch, int pixels,
                             int channels, int chunk_pixels) {
  const int b = blockIdx.y, chunk = blockIdx.x;
  const int p0 = chunk * chunk_pixels, p1 = min(pixels, p0 + chunk_pixels);
  const int row_vectors = channels / 2;
  const double2* rows = reinterpret_cast<const double2*>(x + (int64_t(b) * pixels + p0) * channels);
  double2* out = reinterpret_cast<double2*>(partial + (int64_t(chunk) * batch + b) * channels);
  for (int v = threadIdx.x; v < row_vectors; v += blockDim.x) {
    double2 total = {0, 0};
    for (int p = 0; p < p1 - p0; p += kLoads) {
      double2 loaded[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        loaded[u] = p + u < p1 - p0 ? __ldg(rows + int64_t(p + u) * row_vectors + v) : double2{0, 0};
      }
#pragma unroll
      for (int u = 0; u < kLoads; ++u) {
        total.x += loaded[u].x;
        total.y += loaded[u].y;
      }
    }
    out[v] = total;
  }
}

template <int kLoads>
__global__ void scalars_walk(const double* __restrict__ x, double* __restrict__ partial, int batch, int pixels,
                             int channels, int chunk_pixels) {
  const int b = blockIdx.y, chunk = blockIdx.x;
  const int p0 = chunk * chunk_pixels, p1 = min(pixels, p0 + chunk_pixels);
  const double* rows = x + (int64_t(b) * pixels + p0) * channels;
  double* out = partial + (int64_t(chunk) * batch + b) * channels;
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    double total = 0;
    for (int p = 0; p < p1 - p0; p += kLoads) {
      double loaded[kLoads];
#pragma unroll
      for (int u = 0; u < kLoads; ++u) loaded[u] = p + u < p1 - p0 ? __ldg(rows + int64_t(p + u) * channels + c) : 0.0;
#pragma unroll
      for (int u = 0; u < kLoads; ++u) total += loaded[u];
    }
    out[c] = total;
  }
}

// sums [count] = partial [chunks][count] added in chunk order.
__global__ void add_chunks(const double* __restrict__ partial, double* __restrict__ sums, int64_t count, int chunks) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    double total = 0;
    for (int c = 0; c < chunks; ++c) total += partial[c * count + i];
    sums[i] = total;
  }
}

// out[block] = the block's share of a flat read of `vectors` double2s (a sum, so nothing is optimised away).
__global__ void flat_read(const double2* __restrict__ x, int64_t vectors, double* __restrict__ out) {
  double total = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < vectors; i += int64_t(gridDim.x) * blockDim.x) {
    const double2 v = __ldg(x + i);
    total += v.x + v.y;
  }
  if (total == -1.0) out[blockIdx.x] = total;  // never: x holds no negative values
}

struct Shape {
  const char* name;
  int batch, pixels, channels;
};

void run_shape(const Shape& s, void* flush, int sms) {
  const int64_t count = int64_t(s.batch) * s.channels, elements = count * s.pixels;
  std::vector<double> host(elements), expected(count, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int p = 0; p < s.pixels; ++p)
      for (int c = 0; c < s.channels; ++c) {
        const double v = double((b * 7 + c * 3 + p) % 16) * 0.25;  // sums exact in any order
        host[(int64_t(b) * s.pixels + p) * s.channels + c] = v;
        expected[int64_t(b) * s.channels + c] += v;
      }
  double *x, *partial, *sums;
  CHECK(cudaMalloc(&x, elements * sizeof(double)));
  CHECK(cudaMalloc(&partial, count * 256 * sizeof(double)));
  CHECK(cudaMalloc(&sums, count * sizeof(double)));
  CHECK(cudaMemcpy(x, host.data(), elements * sizeof(double), cudaMemcpyHostToDevice));
  const double bytes = double(elements) * sizeof(double);
  auto before = [&](int) { CHECK(cudaMemsetAsync(flush, 0, 256 << 20)); };
  const double flat_ms = median_ms(before, [&] {
    flat_read<<<sms * 8, 256>>>(reinterpret_cast<const double2*>(x), elements / 2, partial);
  });
  std::printf("%s [%d, %d, %d] float64 channels-last, %.1f MB: flat read %.2f us (%.2f TB/s)\n", s.name, s.batch,
              s.channels, s.pixels, bytes / 1e6, flat_ms * 1e3, bytes / (flat_ms * 1e9));
  struct Best {
    double ms = 1e30;
    char label[96] = "";
  } best;
  const auto measure = [&](const char* walk, int threads, int loads, int chunks, auto launch) {
    const int chunk_pixels = (s.pixels + chunks - 1) / chunks;
    chunks = (s.pixels + chunk_pixels - 1) / chunk_pixels;
    const double walk_ms = median_ms(before, [&] { launch(chunk_pixels, chunks); });
    const double both_ms = median_ms(before, [&] {
      launch(chunk_pixels, chunks);
      add_chunks<<<sms * 4, 256>>>(partial, sums, count, chunks);
    });
    std::vector<double> got(count);
    CHECK(cudaMemcpy(got.data(), sums, count * sizeof(double), cudaMemcpyDeviceToHost));
    double err = 0;
    for (int64_t i = 0; i < count; ++i) err = std::max(err, std::fabs(got[i] - expected[i]));
    std::printf("  %-7s threads %4d loads %2d chunks %3d blocks %5d: %7.2f us (%.2f TB/s), +add %7.2f us%s\n", walk,
                threads, loads, chunks, chunks * s.batch, walk_ms * 1e3, bytes / (walk_ms * 1e9), both_ms * 1e3,
                err == 0 ? "" : "  WRONG");
    if (both_ms < best.ms) {
      best.ms = both_ms;
      std::snprintf(best.label, sizeof(best.label), "%s, %d threads, %d loads, %d chunks", walk, threads, loads,
                    chunks);
    }
  };
  for (int chunks : {4, 8, 16, 32, 64}) {
    for (int threads : {128, 352}) {
      measure("vectors", threads, 4, chunks, [&](int chunk_pixels, int n) {
        vectors_walk<4><<<dim3(n, s.batch), threads>>>(x, partial, s.batch, s.pixels, s.channels, chunk_pixels);
      });
      measure("vectors", threads, 8, chunks, [&](int chunk_pixels, int n) {
        vectors_walk<8><<<dim3(n, s.batch), threads>>>(x, partial, s.batch, s.pixels, s.channels, chunk_pixels);
      });
    }
    for (int threads : {256, 704}) {
      measure("scalars", threads, 8, chunks, [&](int chunk_pixels, int n) {
        scalars_walk<8><<<dim3(n, s.batch), threads>>>(x, partial, s.batch, s.pixels, s.channels, chunk_pixels);
      });
    }
  }
  std::printf("  best with the add: %.2f us (%s), %.2f of the flat read's speed\n", best.ms * 1e3, best.label,
              flat_ms / best.ms);
  CHECK(cudaFree(x));
  CHECK(cudaFree(partial));
  CHECK(cudaFree(sums));
}

int main() {
  void* flush;
  const int sms = device_and_flush(&flush);
  // r23; the float64_channels_last grid's 686 channels on 20 x 20 and 60 x 60 planes (64 MiB); 1440 and 320 channels.
  const Shape shapes[] = {{"r23", 15, 613, 686}, {"grid686", 31, 400, 686}, {"grid686w", 3, 3600, 686},
                          {"c1440", 15, 400, 1440}, {"c320", 66, 400, 320}};
  for (const Shape& s : shapes) run_shape(s, flush, sms);
  return 0;
}
