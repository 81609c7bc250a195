// Reductions across lanes: warp sums and the online logsumexp with torch.logsumexp's semantics.
#pragma once

#include "dtype.cuh"
#include <cmath>

namespace fusedlse {
namespace {

// The sum of `kLanes` neighbouring lanes (a power of two, at most 32), in every one of them; the whole warp must take
// part. The same tree every run.
template <typename A, int kLanes = 32> __device__ __forceinline__ A group_sum(A v) {
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
template <typename A> __device__ __forceinline__ A warp_sum(A v) { return group_sum<A, 32>(v); }

// The warp's sums of kValues values a lane at once (a power of two, at most 32): lane l returns the total of
// values[l % kValues] (`values` is overwritten). At each of the first log2(kValues) steps a lane keeps half of the
// values it still holds and sends the other half to the lane across that bit, which keeps that half: kValues - 1
// shuffles, then log2(32 / kValues) more across the lanes that hold the same value, where a warp_sum each takes 5 a
// value. The same tree every run; the whole warp must take part.
template <typename A, int kValues>
__device__ __forceinline__ A warp_sums(A (&values)[kValues], int lane) {
  static_assert(kValues >= 1 && kValues <= 32 && (kValues & (kValues - 1)) == 0, "a power of two, at most 32");
#pragma unroll
  for (int half = kValues / 2; half > 0; half /= 2) {
    const bool upper = (lane & half) != 0;
#pragma unroll
    for (int i = 0; i < half; ++i) {
      const A send = upper ? values[i] : values[i + half];
      const A keep = upper ? values[i + half] : values[i];
      values[i] = keep + __shfl_xor_sync(0xffffffffu, send, half);
    }
  }
#pragma unroll
  for (int offset = kValues; offset < 32; offset *= 2) values[0] += __shfl_xor_sync(0xffffffffu, values[0], offset);
  return values[0];
}

// Logsumexp, online.
// torch.logsumexp's semantics: NaN if any value is NaN, else +inf if any is +inf, -inf if all are -inf.
// max_value is the max of the values pushed, or, for double, a reference at most 64 below it (lse_push_all).
template <typename A> struct Lse {
  A max_value, scaled_sum;  // logsumexp = max_value + log(scaled_sum); scaled_sum == 0 means empty (or all -inf)
};

// exp(x) for x <= 0, the only exponents a logsumexp takes. float: the hardware's 2^x of x * log2(e), log2(e) rounded
// as __expf rounds it: its error, 2 ulp plus about |x| x 6e-8 relative from rounding the product, matters only near
// 0, where expf's is 2 ulp as well; terms of x < -20 add less than 2e-9 of the sum. Flushed to zero below 2^-126
// (x < -87.3), where __expf gives a subnormal: such a term adds nothing to a sum that holds the max's exp(0) = 1, and
// __expf's range check, halving and squaring around each exp took five issue slots where this takes two (the rows
// epilogue's logits, SASS of sm_90).
__device__ __forceinline__ float exp_nonpositive(float x) {
  float result;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(result) : "f"(x * 1.44269502162933349609375f));
  return result;
}
// double: CUDA's exp (nvcc 13's: x = k ln2 + r by two FMAs, a degree-12 polynomial in r, 2^k added to the exponent
// field), the same operations in the same order, so the same result, from x = 708 down to -708 (lse_push_all takes
// it up to 64, past its reference maximum); 0 below (exp(-708) is 3.3e-308: such a term adds nothing to a sum that
// holds the max's exp(0) = 1). NaN stays NaN, -inf gives 0. Without a branch: CUDA's exp branches to a slow path past
// |x| = 708.4, and ptxas wrapped each exp of lse_push_all in its own divergent region, so a thread ran its exps one
// dependent chain of 15 FMAs after another (SASS of sm_90, mma_lse_kernel).
__device__ __forceinline__ double exp_nonpositive(double x) {
  constexpr double kShifter = 6755399441055744.0;  // 1.5 x 2^52: t's low word is round(x log2(e))
  const double t = fma(x, 0x1.71547652b82fep+0, kShifter);
  const double k = t - kShifter;
  double r = fma(k, -0x1.62e42fefa39efp-1, x);
  r = fma(k, -0x1.abc9e3b39803fp-56, r);
  double p = fma(0x1.ade1569ce2bdfp-26, r, 0x1.28af3fca213eap-22);
  p = fma(p, r, 0x1.71dee62401315p-19);
  p = fma(p, r, 0x1.a01997c89eb71p-16);
  p = fma(p, r, 0x1.a01a014761f65p-13);
  p = fma(p, r, 0x1.6c16c1852b7afp-10);
  p = fma(p, r, 0x1.1111111122322p-7);
  p = fma(p, r, 0x1.55555555502a1p-5);
  p = fma(p, r, 0x1.5555555555511p-3);
  p = fma(p, r, 0x1.000000000000bp-1);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  // -1021 <= k <= 1021 from |x| <= 708, so p x 2^k (p in [0.7, 1.5)) is a normal number
  const int exponent_shift = static_cast<int>(static_cast<unsigned>(__double2loint(t)) << 20);  // k, as an exponent
  const double scaled = __hiloint2double(__double2hiint(p) + exponent_shift, __double2loint(p));
  return x < -708.0 ? 0.0 : scaled;
}

// exp(v - max) for v <= max, with exp(0) where they are equal: +inf - +inf would be NaN.
template <typename A> __device__ __forceinline__ A exp_below(A v, A max) {
  return exp_nonpositive(v == max ? A(0) : v - max);
}

template <typename A> __device__ __forceinline__ void lse_push(Lse<A>& s, A v) {
  if (v > s.max_value) {
    s.scaled_sum = s.scaled_sum * exp_nonpositive(s.max_value - v) + A(1);  // max_value is finite or -inf here
    s.max_value = v;
  } else if (v != -INFINITY) {  // NaN lands here and poisons the sum, as it should
    s.scaled_sum += exp_below(v, s.max_value);
  }
}

template <typename A> __device__ __forceinline__ Lse<A> lse_merge(Lse<A> p, Lse<A> q) {
  if (q.scaled_sum == A(0)) return p;
  if (p.scaled_sum == A(0)) return q;
  const A m = p.max_value > q.max_value ? p.max_value : q.max_value;
  return {m, p.scaled_sum * exp_below(p.max_value, m) + q.scaled_sum * exp_below(q.max_value, m)};
}

// N values at once (-inf ones add nothing, as in lse_push): one rescale of the state, an exp per value.
// fmax ignores NaN, so the max stays a number and a NaN value poisons the sum through its exp.
template <typename A, int N> __device__ __forceinline__ void lse_push_all(Lse<A>& s, const A (&v)[N]) {
  if constexpr (sizeof(A) == 8) {
    // double: values up to kLazyMaxMargin above the state's finite max keep it, so the state's sum takes no rescale,
    // the fifth exp of a push of 4 (float64 epilogues are bound by their exps, docs/limits.md §67, §68: r27's
    // tensor-core epilogue 397 -> 375 us). max_value is then a reference, not the max: each term is
    // exp(v - reference) <= e^64, whose sum no C_out brings near a double's range, and reference + log(sum) is as
    // exact. A NaN value poisons the sum here as below; +inf and a first push (the max -inf) take the rescale.
    constexpr A kLazyMaxMargin = 64;
    A top = v[0];
#pragma unroll
    for (int i = 1; i < N; ++i) top = fmax(top, v[i]);
    if (isfinite(s.max_value) && top <= s.max_value + kLazyMaxMargin) {
#pragma unroll
      for (int i = 0; i < N; ++i) s.scaled_sum += exp_nonpositive(v[i] - s.max_value);
      return;
    }
  }
  A max = s.max_value;
#pragma unroll
  for (int i = 0; i < N; ++i) max = fmax(max, v[i]);
  A sum;
  // The common case without the selects. v - max is exactly 0 at the max and -inf (a term of 0) for v = -inf, the
  // same terms; the selects matter only where the max is infinite (every value -inf, or one +inf). Without them the
  // compiler also fuses the rescale with the first term (one FMA, one rounding fewer), so a sum may differ from the
  // select path's in its last bit, the same way every run. With the selects, ptxas branched around each exp: r45's
  // forward 547 -> 428 us, r00's 104 -> 78 (H200). Both exps are straight-line code, so the values' exps are
  // independent chains that ptxas interleaves.
  if (isfinite(max)) {
    sum = s.scaled_sum * exp_nonpositive(s.max_value - max);  // an empty state (sum 0) stays 0
#pragma unroll
    for (int i = 0; i < N; ++i) sum += exp_nonpositive(v[i] - max);
  } else {
    sum = s.scaled_sum * exp_below(s.max_value, max);
#pragma unroll
    for (int i = 0; i < N; ++i) sum += v[i] == -INFINITY ? A(0) : exp_below(v[i], max);
  }
  s = Lse<A>{max, sum};
}

// The merged state of `kLanes` neighbouring lanes (a power of two, at most 32), in every one of them; the whole warp
// must take part. The max first, then each lane's sum rescaled to it once and the sums added: one exp per lane
// rather than two per merge. The same tree every run, so the result is reproducible.
template <typename A, int kLanes = 32> __device__ __forceinline__ Lse<A> group_lse(Lse<A> s) {
  A max = s.max_value;
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) max = fmax(max, __shfl_xor_sync(0xffffffffu, max, offset));
  A sum = s.scaled_sum * exp_below(s.max_value, max);
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  return Lse<A>{max, sum};
}

// The model's output for one batch: 10 x logsumexp (-inf for an empty state: log(0) = -inf).
template <typename A> __device__ __forceinline__ A ten_lse(Lse<A> s) {
  return A(10) * (s.max_value + log(s.scaled_sum));
}

}  // namespace
}  // namespace fusedlse
