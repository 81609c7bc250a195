// float64 exp for the logsumexp: reduce.cuh's exp_nonpositive (CUDA's form: x = k ln2 + r, a degree-12 polynomial in
// r over |r| <= ln2 / 2, 17 float64 operations) against table-driven forms (x = (64 q + j) ln2 / 64 + r, exp(x) =
// 2^q 2^(j / 64) exp(r), |r| <= ln2 / 128, a degree-5 polynomial: 11 operations, a dependent chain of 9), for the
// float64 epilogues that spend their issue slots on exps (docs/limits.md sections 67-70, 74). Standalone, no torch:
//
//   nvcc -O3 -std=c++17 -arch=sm_90 -Icsrc/cuda/kernels bench/experiments/exp_float64.cu -o /tmp/exp64 && /tmp/exp64
//
// Throughput: every thread pushes 4 independent values a step into a sum (as lse_push_all does), at two occupancies;
// accuracy: the largest error in ulps against long double expl over x in [-708, 64] (and the specials).
//
// Run on the H200 on 2026-12-04 (G exps a second at 4 / 8 blocks of 256 a multiprocessor; largest error): CUDA's
// form 632 / 644, 0.88 ulp; table of 64 by __ldg 731 / 766, 1.26 ulp; from shared memory 763 / 783; 2^q by a
// multiply 720 / 742; table of 32, degree 6, 652 / 683, 0.99 ulp. exp(NaN) NaN in all. Put into reduce.cuh (the
// __ldg form, section 74), it took r27's forward 565 -> 557 us and left r03, r11, r23, r43, r55, r59 level, but made
// r19, r63, r47, r51 and r07 0.5-1 us slower in both rounds (the table's first, cold load in each kernel is a DRAM
// round trip): not kept.
#include "reduce.cuh"  // fusedlse's exp_nonpositive (anonymous namespace): CUDA's form

#include "read_bench.cuh"  // CHECK

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

// 2^(j / 64), j = 0..63, each rounded to nearest from 60 digits; 2^(j / 32) likewise.
__device__ const double kTable64[64] = {
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0, 0x1.0b5586cf9890fp+0,
    0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0, 0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0,
    0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0, 0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0,
    0x1.2d285a6e4030bp+0, 0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0, 0x1.4bfdad5362a27p+0,
    0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0, 0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0,
    0x1.6247eb03a5585p+0, 0x1.6623882552225p+0, 0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0,
    0x1.75feb564267c9p+0, 0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0, 0x1.9c49182a3f090p+0,
    0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0, 0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0,
    0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0, 0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0,
    0x1.d072d4a07897cp+0, 0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0};
__device__ const double kTable32[32] = {
    0x1.0000000000000p+0, 0x1.059b0d3158574p+0, 0x1.0b5586cf9890fp+0, 0x1.11301d0125b51p+0, 0x1.172b83c7d517bp+0,
    0x1.1d4873168b9aap+0, 0x1.2387a6e756238p+0, 0x1.29e9df51fdee1p+0, 0x1.306fe0a31b715p+0, 0x1.371a7373aa9cbp+0,
    0x1.3dea64c123422p+0, 0x1.44e086061892dp+0, 0x1.4bfdad5362a27p+0, 0x1.5342b569d4f82p+0, 0x1.5ab07dd485429p+0,
    0x1.6247eb03a5585p+0, 0x1.6a09e667f3bcdp+0, 0x1.71f75e8ec5f74p+0, 0x1.7a11473eb0187p+0, 0x1.82589994cce13p+0,
    0x1.8ace5422aa0dbp+0, 0x1.93737b0cdc5e5p+0, 0x1.9c49182a3f090p+0, 0x1.a5503b23e255dp+0, 0x1.ae89f995ad3adp+0,
    0x1.b7f76f2fb5e47p+0, 0x1.c199bdd85529cp+0, 0x1.cb720dcef9069p+0, 0x1.d5818dcfba487p+0, 0x1.dfc97337b9b5fp+0,
    0x1.ea4afa2a490dap+0, 0x1.f50765b6e4540p+0};

constexpr double kShifter = 6755399441055744.0;  // 1.5 x 2^52: t's low word is round(x x 64 / ln2)

// kTableSize 64 (degree 5) or 32 (degree 6); kShared: the table from shared memory (else __ldg); kMulScale: 2^q by a
// multiply (else added to the exponent field).
template <int kTableSize, bool kShared, bool kMulScale>
__device__ __forceinline__ double exp_table(double x, const double* shared_table) {
  constexpr double kInvStep = kTableSize == 64 ? 0x1.71547652b82fep+6 : 0x1.71547652b82fep+5;
  constexpr double kStepHi = kTableSize == 64 ? 0x1.62e42fefa39efp-7 : 0x1.62e42fefa39efp-6;
  constexpr double kStepLo = kTableSize == 64 ? 0x1.abc9e3b39803fp-62 : 0x1.abc9e3b39803fp-61;
  constexpr int kBits = kTableSize == 64 ? 6 : 5;
  const double t = fma(x, kInvStep, kShifter);
  const double k = t - kShifter;
  double r = fma(k, -kStepHi, x);
  r = fma(k, -kStepLo, r);
  const int ki = __double2loint(t);
  const int j = ki & (kTableSize - 1);
  const double table = kShared ? shared_table[j] : __ldg((kTableSize == 64 ? kTable64 : kTable32) + j);
  double p;
  if constexpr (kTableSize == 64) {
    p = fma(0x1.1111111111111p-7, r, 0x1.5555555555555p-5);
  } else {
    p = fma(0x1.a01a01a01a01ap-13, r, 0x1.6c16c16c16c17p-10);
    p = fma(p, r, 0x1.1111111111111p-7);
    p = fma(p, r, 0x1.5555555555555p-5);
  }
  p = fma(p, r, 0x1.5555555555555p-3);
  p = fma(p, r, 0.5);
  const double e = fma(r * r, p, r);  // exp(r) - 1
  const double s = fma(table, e, table);
  const int q = ki >> kBits;  // floor(k / size): j is k's remainder
  double scaled;
  if constexpr (kMulScale) {
    scaled = s * __hiloint2double((q + 1023) << 20, 0);
  } else {
    scaled = __hiloint2double(__double2hiint(s) + (q << 20), __double2loint(s));
  }
  return x < -708.0 ? 0.0 : scaled;
}

template <int kVariant> __device__ __forceinline__ double exp_variant(double x, const double* shared_table) {
  if constexpr (kVariant == 0) return fusedlse::exp_nonpositive(x);
  if constexpr (kVariant == 1) return exp_table<64, false, false>(x, shared_table);
  if constexpr (kVariant == 2) return exp_table<64, true, false>(x, shared_table);
  if constexpr (kVariant == 3) return exp_table<64, false, true>(x, shared_table);
  if constexpr (kVariant == 4) return exp_table<32, false, false>(x, shared_table);
  return 0.0;
}
constexpr const char* kVariantNames[] = {"reduce.cuh (CUDA's form)", "table 64, ldg, exponent add",
                                         "table 64, shared, exponent add", "table 64, ldg, multiply",
                                         "table 32 (degree 6), ldg"};

template <int kVariant> __device__ void fill_shared(double* shared_table) {
  if (kVariant == 2) {
    for (int i = threadIdx.x; i < 64; i += blockDim.x) shared_table[i] = kTable64[i];
    __syncthreads();
  }
}

template <int kVariant> __global__ void throughput(double* out, int steps, double start) {
  __shared__ double shared_table[64];
  fill_shared<kVariant>(shared_table);
  double v[4];
  for (int i = 0; i < 4; ++i) v[i] = -static_cast<double>((threadIdx.x * 4 + i) % 97) * 0.31 - start;
  double sum = 0.0;
  for (int s = 0; s < steps; ++s) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      sum += exp_variant<kVariant>(v[i], shared_table);
      v[i] = fma(v[i], 1.0000001, -1e-3);  // the logit's scale and bias: one float64 FMA a value
      if (v[i] < -40.0) v[i] += 40.0;
    }
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
}

template <int kVariant> __global__ void values(const double* x, double* y, int n) {
  __shared__ double shared_table[64];
  fill_shared<kVariant>(shared_table);
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    y[i] = exp_variant<kVariant>(x[i], shared_table);
  }
}

template <int kVariant> float time_throughput(double* out, int blocks, int steps) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  throughput<kVariant><<<blocks, 256>>>(out, steps, 0.5);
  std::vector<float> ms;
  for (int rep = 0; rep < 7; ++rep) {
    CHECK(cudaEventRecord(a));
    throughput<kVariant><<<blocks, 256>>>(out, steps, 0.5 + rep);
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float t;
    CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double ulps(double got, long double want) {
  if (std::isnan(static_cast<double>(want))) return std::isnan(got) ? 0.0 : 1e30;
  if (want == 0) return got == 0 ? 0.0 : 1e30;
  const double w = static_cast<double>(want);
  const double ulp = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / ulp);
}

template <int kVariant> void report(double* out, int sms, const double* dx, double* dy, const std::vector<double>& hx) {
  const int steps = 4096;
  for (int blocks_per_sm : {4, 8}) {
    const int blocks = sms * blocks_per_sm;
    const float ms = time_throughput<kVariant>(out, blocks, steps);
    const double exps = double(blocks) * 256 * steps * 4;
    std::printf("  %-32s %d blocks of 256 a multiprocessor: %8.3f ms, %6.2f G exps/s\n", kVariantNames[kVariant],
                blocks_per_sm, ms, exps / (ms * 1e-3) / 1e9);
  }
  const int n = static_cast<int>(hx.size());
  values<kVariant><<<sms * 8, 256>>>(dx, dy, n);
  CHECK(cudaGetLastError());
  std::vector<double> hy(n);
  CHECK(cudaMemcpy(hy.data(), dy, n * sizeof(double), cudaMemcpyDeviceToHost));
  double worst = 0, worst_x = 0;
  int nan_ok = 1;
  for (int i = 0; i < n; ++i) {
    const long double want = hx[i] < -708.0 ? 0.0L : expl(static_cast<long double>(hx[i]));
    const double e = ulps(hy[i], want);
    if (std::isnan(hx[i])) {
      nan_ok &= std::isnan(hy[i]);
      continue;
    }
    if (e > worst) worst = e, worst_x = hx[i];
  }
  std::printf("  %-32s largest error %.3f ulp (at x = %.17g); exp(NaN) NaN: %s\n", kVariantNames[kVariant], worst,
              worst_x, nan_ok ? "yes" : "NO");
}

int main() {
  int device = 0;
  CHECK(cudaSetDevice(device));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, device));
  std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
  const int sms = prop.multiProcessorCount;
  double* out;
  CHECK(cudaMalloc(&out, sizeof(double) * sms * 8 * 256));
  // Accuracy points: uniform over [-708, 64], dense near 0, the cut, and the specials.
  std::vector<double> hx;
  const int n = 1 << 22;
  srand(7);
  for (int i = 0; i < n; ++i) hx.push_back(-708.0 + 772.0 * (rand() / (RAND_MAX + 1.0)));
  for (int i = 0; i < 4096; ++i) hx.push_back(-1e-3 * i / 4096.0), hx.push_back(-707.99 - 1e-4 * i);
  hx.push_back(0.0), hx.push_back(-0.0), hx.push_back(-INFINITY), hx.push_back(NAN), hx.push_back(-NAN);
  hx.push_back(-708.0), hx.push_back(-708.4), hx.push_back(-745.2), hx.push_back(64.0);
  double *dx, *dy;
  CHECK(cudaMalloc(&dx, hx.size() * sizeof(double)));
  CHECK(cudaMalloc(&dy, hx.size() * sizeof(double)));
  CHECK(cudaMemcpy(dx, hx.data(), hx.size() * sizeof(double), cudaMemcpyHostToDevice));
  report<0>(out, sms, dx, dy, hx);
  report<1>(out, sms, dx, dy, hx);
  report<2>(out, sms, dx, dy, hx);
  report<3>(out, sms, dx, dy, hx);
  report<4>(out, sms, dx, dy, hx);
  return 0;
}
