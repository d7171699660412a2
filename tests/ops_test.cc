// CPU ops against straightforward references: every float kernel at every ISA this CPU runs
// against the scalar one, matmul (decode and GEMM paths) against a double-precision loop, RoPE in
// both layouts against the rotation formula, attention over a paged cache against dense math.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"
#include "ops/attention.h"
#include "ops/cpu/float_kernels.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "quant/g4.h"
#include "quant/quant.h"

namespace strata {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> out = {Isa::Scalar};
  set_isa_cap(kTopIsa);
  if (static_cast<int>(best_isa()) >= 1) out.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) out.push_back(Isa::Avx512);
  if (best_isa() == Isa::Avx512Vnni) out.push_back(Isa::Avx512Vnni);  // decode kernels of its own
  return out;
}

TEST(FloatKernels, DotsMatchScalarAtEveryIsa) {
  const auto& ref = cpu::float_kernels_scalar();
  for (Isa isa : runnable_isas()) {
    SCOPED_TRACE(isa_name(isa));
    const auto& k = cpu::float_kernels_for(isa);
    for (int64_t n : {1, 7, 8, 15, 16, 31, 33, 64, 100, 257, 4096}) {
      auto a = randn(static_cast<size_t>(n), 1), b = randn(static_cast<size_t>(n), 2);
      std::vector<uint16_t> h(static_cast<size_t>(n)), bf(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(a[i]), bf[i] = f32_to_bf16(a[i]);
      const float tol = 1e-5f * std::sqrt(float(n)) * 4;
      EXPECT_NEAR(k.dot_f32(n, a.data(), b.data()), ref.dot_f32(n, a.data(), b.data()), tol) << n;
      EXPECT_NEAR(k.dot_f16(n, h.data(), b.data()), ref.dot_f16(n, h.data(), b.data()), tol) << n;
      EXPECT_NEAR(k.dot_bf16(n, bf.data(), b.data()), ref.dot_bf16(n, bf.data(), b.data()), tol)
          << n;
      std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
      k.f16_to_f32(n, h.data(), x.data());
      ref.f16_to_f32(n, h.data(), y.data());
      EXPECT_EQ(x, y);
      k.bf16_to_f32(n, bf.data(), x.data());
      ref.bf16_to_f32(n, bf.data(), y.data());
      EXPECT_EQ(x, y);
      std::vector<uint16_t> h2(static_cast<size_t>(n));
      k.f32_to_f16(n, a.data(), h2.data());
      EXPECT_EQ(h2, h);
      // Two rows at once (a stride of n + 3, so the rows are not aligned alike) match one row
      // at a time.
      const int64_t stride = n + 3;
      auto w2 = randn(static_cast<size_t>(2 * stride), 5);
      std::vector<uint16_t> h2r(w2.size()), b2r(w2.size());
      for (size_t i = 0; i < w2.size(); ++i)
        h2r[i] = f32_to_fp16(w2[i]), b2r[i] = f32_to_bf16(w2[i]);
      float out[2];
      if (k.dot2_f16) {
        k.dot2_f16(n, h2r.data(), h2r.data() + stride, b.data(), out);
        for (int r = 0; r < 2; ++r)
          EXPECT_NEAR(out[r], ref.dot_f16(n, h2r.data() + r * stride, b.data()), tol) << n;
      }
      if (k.dot2_bf16) {
        k.dot2_bf16(n, b2r.data(), b2r.data() + stride, b.data(), out);
        for (int r = 0; r < 2; ++r)
          EXPECT_NEAR(out[r], ref.dot_bf16(n, b2r.data() + r * stride, b.data()), tol) << n;
      }
    }
  }
  set_isa_cap(kTopIsa);
}

// gemm_nn (prefill attention's products) at every ISA against a double reference, overwriting
// and accumulating, with padded leading dimensions; nothing past n columns is written.
TEST(FloatKernels, GemmNnMatchesReference) {
  for (Isa isa : runnable_isas()) {
    SCOPED_TRACE(isa_name(isa));
    const auto& k = cpu::float_kernels_for(isa);
    for (int64_t m : {1, 2, 5, 6, 7, 13})
      for (int64_t n : {1, 7, 8, 9, 16, 17, 33, 64, 80})
        for (int64_t kk : {1, 9, 64})
          for (bool add : {false, true}) {
            const int64_t lda = kk + 3, ldb = n + 2, ldc = n + 1;
            auto a = randn(size_t(m * lda), 3), b = randn(size_t(kk * ldb), 4),
                 c0 = randn(size_t(m * ldc), 5);
            for (int64_t i = 0; i < m; ++i) c0[size_t(i * ldc + n)] = -7.0f;
            std::vector<float> c = c0;
            k.gemm_nn(m, n, kk, a.data(), lda, b.data(), ldb, c.data(), ldc, add);
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < n; ++j) {
                double s = add ? c0[size_t(i * ldc + j)] : 0.0;
                for (int64_t p = 0; p < kk; ++p) s += double(a[i * lda + p]) * b[p * ldb + j];
                ASSERT_NEAR(c[size_t(i * ldc + j)], s, 1e-4)
                    << m << "x" << n << "x" << kk << (add ? " add" : "");
              }
              ASSERT_EQ(c[size_t(i * ldc + n)], -7.0f) << "wrote past column " << n;
            }
          }
  }
}

// The AVX-512 strip GEMM of prefill: rows packed from f32, f16 and bf16 weights (padded rows,
// partial strips, odd column counts), then every token count up to two tiles and a remainder,
// overwriting and accumulating; nothing outside the strip's rows is written.
TEST(FloatKernels, StripGemmMatchesReference) {
  set_isa_cap(kTopIsa);
  const cpu::StripGemm* sg = cpu::strip_gemm();
  if (!sg) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (int64_t nr : {1, 15, 16, 17, 32})
      for (int64_t kc : {1, 2, 3, 70}) {
        const int64_t es = dt == DType::F32 ? 4 : 2, ldw = kc + 3;
        auto wf = randn(size_t(nr * ldw), 6);
        std::vector<uint8_t> w(size_t(nr * ldw * es));
        for (size_t i = 0; i < wf.size(); ++i) {
          if (dt == DType::F32) {
            std::memcpy(&w[i * 4], &wf[i], 4);
            continue;
          }
          const uint16_t h = dt == DType::F16 ? f32_to_fp16(wf[i]) : f32_to_bf16(wf[i]);
          wf[i] = dt == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
          std::memcpy(&w[i * 2], &h, 2);
        }
        struct alignas(64) Line {
          float f[16];
        };
        std::vector<Line> packed(size_t(kc * 2));
        auto pack = dt == DType::F32   ? sg->pack_f32
                    : dt == DType::F16 ? sg->pack_f16
                                       : sg->pack_bf16;
        pack(w.data(), ldw * es, nr, kc, packed.data()->f);
        for (int64_t m : {1, 11, 12, 25})
          for (bool add : {false, true}) {
            const int64_t lda = kc + 1, ldc = 40;
            auto a = randn(size_t(m * lda), 7), c0 = randn(size_t(m * ldc), 8);
            std::vector<float> c = c0;
            sg->gemm(m, nr, kc, a.data(), lda, packed.data()->f, c.data(), ldc, add);
            for (int64_t t = 0; t < m; ++t)
              for (int64_t r = 0; r < ldc; ++r) {
                if (r >= nr) {
                  ASSERT_EQ(c[size_t(t * ldc + r)], c0[size_t(t * ldc + r)]) << "wrote row " << r;
                  continue;
                }
                double s = add ? c0[size_t(t * ldc + r)] : 0.0;
                for (int64_t p = 0; p < kc; ++p) s += double(a[t * lda + p]) * wf[r * ldw + p];
                ASSERT_NEAR(c[size_t(t * ldc + r)], s, 1e-4)
                    << dtype_name(dt) << " rows " << nr << " k " << kc << " tokens " << m;
              }
          }
      }
}

// Softmax numerators and the SiLU gate at every ISA (glibc's vector expf on AVX2/AVX-512)
// against std::exp.
TEST(FloatKernels, ExpKernelsMatchStdExp) {
  for (Isa isa : runnable_isas()) {
    SCOPED_TRACE(isa_name(isa));
    const auto& k = cpu::float_kernels_for(isa);
    for (int64_t n : {1, 7, 8, 15, 16, 17, 100}) {
      auto x = randn(size_t(n), 9, 20.0f);
      const float shift = *std::max_element(x.begin(), x.end());
      std::vector<float> y = x;
      const float sum = k.exp_sum(n, y.data(), shift);
      double want_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(double(x[size_t(i)] - shift));  // the same f32 argument
        want_sum += want;
        EXPECT_NEAR(y[size_t(i)], want, 1e-6 * want + 1e-30) << n << " at " << i;
      }
      EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << n;
      // The gated activation: silu(g) * u.
      auto g = randn(size_t(n), 10, 8.0f), u = randn(size_t(n), 11);
      std::vector<float> gu = g;
      k.silu_mul(n, gu.data(), u.data());
      for (int64_t i = 0; i < n; ++i) {
        const double gi = g[size_t(i)], want = gi / (1 + std::exp(-gi)) * u[size_t(i)];
        EXPECT_NEAR(gu[size_t(i)], want, 2e-6 * std::fabs(want) + 1e-30) << n << " at " << i;
      }
    }
  }
}

// The few-token kernels on half weights (rows padded: ldw > k) against a double reference.
TEST(FloatKernels, FewTokenHalfGemmMatchesReference) {
  for (Isa isa : runnable_isas()) {
    SCOPED_TRACE(isa_name(isa));
    const auto& k = cpu::float_kernels_for(isa);
    for (const bool bf : {false, true}) {
      auto gemm = bf ? k.gemm_few_bf16 : k.gemm_few_f16;
      if (!gemm) continue;
      for (int64_t m : {1, 2, 3, 5})
        for (int64_t n : {1, 4, 6, 7, 13})
          for (int64_t kk : {1, 9, 16, 70, 2100}) {  // 2100: several k chunks, a tail
            const int64_t ldw = kk + 5, ldx = kk + 2, ldy = n + 1;
            auto wf = randn(size_t(n * ldw), 3), x = randn(size_t(m * ldx), 4);
            std::vector<uint16_t> wh(wf.size());
            for (size_t i = 0; i < wf.size(); ++i) {
              wh[i] = bf ? f32_to_bf16(wf[i]) : f32_to_fp16(wf[i]);
              wf[i] = bf ? bf16_to_f32(wh[i]) : fp16_to_f32(wh[i]);
            }
            std::vector<float> y(size_t(m * ldy), -7.0f);
            gemm(m, n, kk, wh.data(), ldw, x.data(), ldx, y.data(), ldy);
            for (int64_t t = 0; t < m; ++t) {
              for (int64_t r = 0; r < n; ++r) {
                double s = 0;
                for (int64_t i = 0; i < kk; ++i) s += double(wf[r * ldw + i]) * x[t * ldx + i];
                EXPECT_NEAR(y[t * ldy + r], s, 1e-4)
                    << (bf ? "bf16 " : "f16 ") << m << "x" << n << "x" << kk;
              }
              EXPECT_EQ(y[t * ldy + n], -7.0f) << "wrote past the last row";
            }
          }
    }
  }
}

TEST(F16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp16(f), h) << h;
  }
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);            // rounds to inf
  EXPECT_EQ(f32_to_fp16(5.9604645e-08f), 0x0001);      // smallest subnormal
  EXPECT_EQ(f32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
}

class Matmul : public ::testing::TestWithParam<DType> {};

TEST_P(Matmul, BothPathsMatchDoubleReference) {
  const DType dt = GetParam();
  ThreadPool pool(2);
  // Decode, few-token and sgemm paths; 2100 columns: sgemm's k chunks (1024, 1024, 52). 37 rows:
  // decode's pairs of rows (r, r + 19) leave row 18 on its own.
  for (auto [n_tok, n_in] : {std::pair<int64_t, int64_t>{1, 70},
                             {2, 70},
                             {3, 70},
                             {4, 70},
                             {9, 70},
                             {31, 70},
                             {40, 70},
                             {100, 70},
                             {100, 2100},
                             {5, 2100},
                             {1, 2100}}) {
    const int64_t n_out = 37;
    auto wf = randn(size_t(n_out * n_in), 5, 0.3f), x = randn(size_t(n_tok * n_in), 6),
         b = randn(size_t(n_out), 7);
    std::vector<uint16_t> wh(wf.size());
    Tensor w{dt, {n_out, n_in}, nullptr};
    if (dt == DType::F32) {
      w.data = wf.data();
    } else {
      for (size_t i = 0; i < wf.size(); ++i)
        wh[i] = dt == DType::F16 ? f32_to_fp16(wf[i]) : f32_to_bf16(wf[i]);
      for (size_t i = 0; i < wf.size(); ++i)
        wf[i] = dt == DType::F16 ? fp16_to_f32(wh[i]) : bf16_to_f32(wh[i]);
      w.data = wh.data();
    }
    std::vector<float> y(size_t(n_tok * n_out));
    matmul(pool, w, x.data(), n_tok, y.data(), b.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t r = 0; r < n_out; ++r) {
        double s = b[r];
        for (int64_t i = 0; i < n_in; ++i) s += double(wf[r * n_in + i]) * x[t * n_in + i];
        EXPECT_NEAR(y[t * n_out + r], s, 1e-4) << "tokens " << n_tok << " row " << r;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(FloatTypes, Matmul,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16));

// rope keeps the last position's angles between calls: a call that starts at the position the
// previous one ended on, with another theta or rope_dim, must still get its own angles.
TEST(Rope, BothLayoutsRotatePairsByPositionAngle) {
  const int64_t heads = 2, hd = 8;
  struct C {
    float theta;
    int64_t rd;
  };
  for (const C c : {C{10000.0f, 6}, C{10000.0f, 6}, C{500000.0f, 6}, C{500000.0f, 8}})
    for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::HalfSplit}) {
      const int64_t rd = c.rd;
      auto x = randn(size_t(4 * heads * hd), 8);
      auto y = x;
      const int32_t pos[4] = {5, 1000, 0, 5};  // each call starts where the last one ended
      rope(y.data(), 4, pos, heads, hd, rd, c.theta, layout);
      for (int t = 0; t < 4; ++t)
        for (int h = 0; h < heads; ++h) {
          const float* a = x.data() + (t * heads + h) * hd;
          const float* o = y.data() + (t * heads + h) * hd;
          for (int i = 0; i < rd / 2; ++i) {
            const int p = layout == RopeLayout::Interleaved ? 2 * i : i;
            const int q = layout == RopeLayout::Interleaved ? 2 * i + 1 : i + rd / 2;
            const double ang = pos[t] * std::pow(double(c.theta), -2.0 * i / double(rd));
            EXPECT_NEAR(o[p], a[p] * std::cos(ang) - a[q] * std::sin(ang), 1e-5);
            EXPECT_NEAR(o[q], a[p] * std::sin(ang) + a[q] * std::cos(ang), 1e-5);
          }
          for (int i = rd; i < hd; ++i) EXPECT_EQ(o[i], a[i]);  // beyond rope_dim: untouched
        }
    }
}

TEST(Norms, RmsAndLayerNorm) {
  ThreadPool pool(2);
  auto x = randn(3 * 10, 9), w = randn(10, 10), b = randn(10, 11);
  std::vector<float> y(30);
  rms_norm(pool, x.data(), w.data(), 3, 10, 1e-5f, y.data());
  for (int r = 0; r < 3; ++r) {
    double ss = 0;
    for (int i = 0; i < 10; ++i) ss += x[r * 10 + i] * x[r * 10 + i];
    const double inv = 1 / std::sqrt(ss / 10 + 1e-5);
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(y[r * 10 + i], x[r * 10 + i] * inv * w[i], 1e-5);
  }
  layer_norm(pool, x.data(), w.data(), b.data(), 3, 10, 1e-5f, y.data());
  for (int r = 0; r < 3; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < 10; ++i) m += x[r * 10 + i] / 10.0;
    for (int i = 0; i < 10; ++i) v += (x[r * 10 + i] - m) * (x[r * 10 + i] - m) / 10.0;
    for (int i = 0; i < 10; ++i)
      EXPECT_NEAR(y[r * 10 + i], (x[r * 10 + i] - m) / std::sqrt(v + 1e-5) * w[i] + b[i], 1e-5);
  }
}

// Dense reference attention over K/V laid out [pos][n_kv*hd].
std::vector<float> dense_attention(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, int64_t n_q, int64_t pos0,
                                   const AttentionParams& p, const float* alibi) {
  const int64_t hd = p.head_dim, kvd = p.n_head_kv * hd;
  std::vector<float> out(size_t(n_q * p.n_head * hd));
  for (int64_t t = 0; t < n_q; ++t)
    for (int64_t h = 0; h < p.n_head; ++h) {
      const int64_t kvh = h / (p.n_head / p.n_head_kv), nk = pos0 + t + 1;
      std::vector<double> s(static_cast<size_t>(nk));
      double mx = -1e300;
      for (int64_t j = 0; j < nk; ++j) {
        double d = 0;
        for (int64_t i = 0; i < hd; ++i)
          d += double(q[(t * p.n_head + h) * hd + i]) * k[j * kvd + kvh * hd + i];
        s[j] = d * p.scale + (alibi ? alibi[h] * j : 0);
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (auto& e : s) z += e = std::exp(e - mx);
      for (int64_t i = 0; i < hd; ++i) {
        double o = 0;
        for (int64_t j = 0; j < nk; ++j) o += s[j] / z * v[j * kvd + kvh * hd + i];
        out[(t * p.n_head + h) * hd + i] = static_cast<float>(o);
      }
    }
  return out;
}

struct AttentionCase {
  int64_t n_head, n_head_kv, head_dim, block_tokens, pos0, n_q;
};

// One case against the dense reference, for an f32 and an f16 cache, with and without ALiBi.
void check_paged_attention(ThreadPool& pool, const AttentionCase& c, double tol) {
  AttentionParams p;
  p.n_head = c.n_head;
  p.n_head_kv = c.n_head_kv;
  p.head_dim = c.head_dim;
  p.scale = 1 / std::sqrt(float(c.head_dim));
  std::vector<float> slopes(static_cast<size_t>(c.n_head));
  for (int64_t h = 0; h < c.n_head; ++h) slopes[size_t(h)] = 0.5f / float(1 << h % 8);
  const int64_t kvd = c.n_head_kv * c.head_dim, qdim = c.n_head * c.head_dim;
  const int64_t bt = c.block_tokens, total = c.pos0 + c.n_q, n_q = c.n_q;
  for (DType dt : {DType::F32, DType::F16})
    for (const float* alibi :
         {static_cast<const float*>(nullptr), static_cast<const float*>(slopes.data())}) {
      p.alibi_slopes = alibi;
      auto k = randn(size_t(total * kvd), 12), v = randn(size_t(total * kvd), 13),
           q = randn(size_t(n_q * qdim), 14);
      const int64_t es = dt == DType::F32 ? 4 : 2;
      // Blocks deliberately out of order in memory: the view's table defines the order.
      const int64_t nb = (total + bt - 1) / bt;
      std::vector<std::vector<uint8_t>> kb(static_cast<size_t>(nb)), vb(static_cast<size_t>(nb));
      std::vector<const void*> kp, vp;
      for (int64_t b = nb - 1; b >= 0; --b)
        kb[b].resize(size_t(bt * kvd * es)), vb[b].resize(size_t(bt * kvd * es));
      for (int64_t j = 0; j < total; ++j)
        for (int64_t i = 0; i < kvd; ++i) {
          uint8_t* kd = kb[j / bt].data() + ((j % bt) * kvd + i) * es;
          uint8_t* vd = vb[j / bt].data() + ((j % bt) * kvd + i) * es;
          if (dt == DType::F32) {
            std::memcpy(kd, &k[j * kvd + i], 4);
            std::memcpy(vd, &v[j * kvd + i], 4);
          } else {
            const uint16_t kh = f32_to_fp16(k[j * kvd + i]), vh = f32_to_fp16(v[j * kvd + i]);
            std::memcpy(kd, &kh, 2);
            std::memcpy(vd, &vh, 2);
            k[j * kvd + i] = fp16_to_f32(kh);
            v[j * kvd + i] = fp16_to_f32(vh);
          }
        }
      for (int64_t b = 0; b < nb; ++b) kp.push_back(kb[b].data()), vp.push_back(vb[b].data());
      KvView view{kp.data(), vp.data(), nb, bt, dt, kvd, kvd * es};
      std::vector<float> out(size_t(n_q * qdim));
      attention(pool, p, view, q.data(), n_q, c.pos0, out.data());
      const auto want = dense_attention(q, k, v, n_q, c.pos0, p, alibi);
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], want[i], tol)
            << dtype_name(dt) << (alibi ? " alibi" : "") << " heads " << c.n_head << "/"
            << c.n_head_kv << " dim " << c.head_dim << " pos0 " << c.pos0 << " queries " << n_q
            << " at " << i;
    }
}

TEST(Attention, PagedMatchesDenseWithGqaAlibiAndF16) {
  ThreadPool pool(2);
  // Fewer than 4 queries take the grouped decode path (a task per KV head and query; the last
  // block partly filled; one head per KV head; head dimensions that are not whole vectors; the
  // 1B Llama's 32 heads on 4 KV heads), the rest the tiled prefill path: query tiles with
  // remainders, key chunks of 64 with remainders and a tile's earlier rows masked out of its
  // last chunk.
  const AttentionCase cases[] = {
      {4, 2, 8, 4, 7, 1},    {4, 2, 8, 4, 7, 3},    {32, 4, 64, 16, 100, 1}, {32, 4, 64, 16, 95, 2},
      {3, 3, 24, 8, 0, 1},   {6, 1, 40, 8, 33, 1},  {4, 2, 8, 4, 7, 4},      {8, 2, 64, 16, 70, 37},
      {4, 4, 80, 16, 0, 20}, {6, 1, 24, 8, 130, 9}, {8, 8, 16, 32, 0, 150}};
  for (Isa isa : runnable_isas()) {
    set_isa_cap(isa);
    for (const AttentionCase& c : cases) {
      SCOPED_TRACE(isa_name(isa));
      check_paged_attention(pool, c, 2e-5);
    }
  }
  set_isa_cap(kTopIsa);
}

// G4 (compressed) KV rows: heads of whole 64-element groups take the fused code kernels, other
// head sizes widen rows to f32; both, at every ISA this CPU runs, against dense math on the
// dequantized cache.
TEST(Attention, G4CacheMatchesDenseOnDequantizedRows) {
  ThreadPool pool(2);
  for (int64_t hd : {128, 64, 8})
    for (Isa isa : runnable_isas()) {
      set_isa_cap(isa);
      AttentionParams p;
      p.n_head = 4;
      p.n_head_kv = 2;
      p.head_dim = hd;
      p.scale = 1 / std::sqrt(float(hd));
      const int64_t kvd = p.n_head_kv * hd, bt = 4, total = 11, pos0 = 7, n_q = 4;
      auto k = randn(size_t(total * kvd), 15), v = randn(size_t(total * kvd), 16),
           q = randn(size_t(n_q * p.n_head * hd), 17);
      const int64_t rb = g4_kv_row_bytes(kvd), nb = (total + bt - 1) / bt;
      std::vector<std::vector<uint8_t>> kb(size_t(nb), std::vector<uint8_t>(size_t(bt * rb))),
          vb = kb;
      std::vector<const void*> kp, vp;
      for (int64_t j = 0; j < total; ++j) {
        uint8_t* kd = kb[j / bt].data() + (j % bt) * rb;
        uint8_t* vd = vb[j / bt].data() + (j % bt) * rb;
        g4_quantize_kv_row(&k[j * kvd], kvd, kd);
        g4_quantize_kv_row(&v[j * kvd], kvd, vd);
        g4_dequantize_kv_row(kd, kvd, &k[j * kvd]);
        g4_dequantize_kv_row(vd, kvd, &v[j * kvd]);
      }
      for (int64_t b = 0; b < nb; ++b) kp.push_back(kb[b].data()), vp.push_back(vb[b].data());
      KvView view{kp.data(), vp.data(), nb, bt, DType::G4, kvd, rb};
      std::vector<float> out(size_t(n_q * p.n_head * hd));
      attention(pool, p, view, q.data(), n_q, pos0, out.data());
      const auto want = dense_attention(q, k, v, n_q, pos0, p, nullptr);
      for (size_t i = 0; i < out.size(); ++i)
        EXPECT_NEAR(out[i], want[i], 2e-5 * (1 + std::fabs(want[i])))
            << "head_dim " << hd << " isa " << isa_name(isa) << " at " << i;
    }
  set_isa_cap(kTopIsa);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// Quantized weights through the front-end: the fused integer path (few tokens, activations
// quantized to Q8), the integer panel GEMM (Q4_0/Q8_0 from 8/12 tokens on AVX-512 VNNI) and the
// dequantize + f32 GEMM path (many tokens), against double math on the dequantized weights. The
// Q8 activations bound the error: 2% of sum |w x| is generous for 8 bits.
class QuantMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmul, BothPathsMatchDequantizedReference) {
  const DType dt = GetParam();
  const QuantKernels* q = quant_kernels(dt);
  ASSERT_NE(q, nullptr);
  ThreadPool pool(2);
  // 2304 columns: the sgemm path widens them in k chunks (1024, 1024, 256).
  const int64_t n_out = 37, n_in = 2304;
  auto wf = randn(size_t(n_out * n_in), 21, 0.5f);
  std::vector<uint8_t> wq(static_cast<size_t>(n_out * row_bytes(dt, n_in)));
  for (int64_t r = 0; r < n_out; ++r)
    q->quantize_row(wf.data() + r * n_in, wq.data() + r * row_bytes(dt, n_in), n_in);
  std::vector<float> deq(wf.size());
  for (int64_t r = 0; r < n_out; ++r)
    q->dequantize_row(wq.data() + r * row_bytes(dt, n_in), deq.data() + r * n_in, n_in);
  Tensor w{dt, {n_out, n_in}, wq.data()};
  for (int64_t n_tok : {1, 3, 5, 8, 12, 20}) {  // both sides of the panel GEMM's thresholds
    auto x = randn(size_t(n_tok * n_in), 22), b = randn(size_t(n_out), 23);
    std::vector<float> y(size_t(n_tok * n_out));
    matmul(pool, w, x.data(), n_tok, y.data(), b.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t r = 0; r < n_out; ++r) {
        double s = b[r], mag = 0;
        for (int64_t i = 0; i < n_in; ++i) {
          s += double(deq[r * n_in + i]) * x[t * n_in + i];
          mag += std::fabs(double(deq[r * n_in + i]) * x[t * n_in + i]);
        }
        EXPECT_NEAR(y[t * n_out + r], s, 0.02 * mag + 1e-4)
            << dtype_name(dt) << " tokens " << n_tok << " row " << r;
      }
  }
}

// A token's result does not depend on how many tokens share the call, on the many-token path:
// perplexity and serving results must not change with the batch size.
TEST_P(QuantMatmul, ManyTokenResultsDoNotDependOnTheBatch) {
  const DType dt = GetParam();
  const QuantKernels* q = quant_kernels(dt);
  ThreadPool pool(2);
  const int64_t n_out = 70, n_in = 512, big = 300, small = kQuantGemmMinTokens + 3;
  auto wf = randn(size_t(n_out * n_in), 31, 0.5f);
  std::vector<uint8_t> wq(static_cast<size_t>(n_out * row_bytes(dt, n_in)));
  for (int64_t r = 0; r < n_out; ++r)
    q->quantize_row(wf.data() + r * n_in, wq.data() + r * row_bytes(dt, n_in), n_in);
  Tensor w{dt, {n_out, n_in}, wq.data()};
  const auto x = randn(size_t(big * n_in), 32);
  std::vector<float> all(size_t(big * n_out)), part(size_t(small * n_out));
  matmul(pool, w, x.data(), big, all.data(), nullptr);
  for (int64_t t0 : {int64_t{0}, int64_t{100}, big - small}) {
    matmul(pool, w, x.data() + t0 * n_in, small, part.data(), nullptr);
    for (int64_t i = 0; i < small * n_out; ++i)
      ASSERT_EQ(part[size_t(i)], all[size_t(t0 * n_out + i)])
          << dtype_name(dt) << " tokens from " << t0 << " at " << i;
  }
}

// matmul_shared: three weights of 37, 8 and 9 rows with biases (decode's one pass over their
// joined rows, whose pairs cross from one weight to another) give each weight's own matmul: the
// same values for quantized types, where every row is the same kernel call, and within float
// rounding for half weights (a row's partner changes which kernel computes it). Several tokens
// and mixed widths take the per-weight path.
void check_shared(DType dt) {
  SCOPED_TRACE(dtype_name(dt));
  ThreadPool pool(2);
  const int64_t n_in = 2304, rows[3] = {37, 8, 9};
  std::vector<std::vector<uint8_t>> bytes(3);
  std::vector<Tensor> w(3);
  std::vector<std::vector<float>> bias(3);
  for (int i = 0; i < 3; ++i) {
    const auto wf = randn(size_t(rows[i] * n_in), 40 + i, 0.5f);
    bytes[size_t(i)].resize(size_t(rows[i] * row_bytes(dt, n_in)));
    uint8_t* dst = bytes[size_t(i)].data();
    for (int64_t r = 0; r < rows[i]; ++r) {
      if (dt == DType::F16 || dt == DType::BF16) {
        auto* h = reinterpret_cast<uint16_t*>(dst + r * row_bytes(dt, n_in));
        for (int64_t c = 0; c < n_in; ++c)
          h[c] = dt == DType::F16 ? f32_to_fp16(wf[size_t(r * n_in + c)])
                                  : f32_to_bf16(wf[size_t(r * n_in + c)]);
      } else {
        quant_kernels(dt)->quantize_row(wf.data() + r * n_in, dst + r * row_bytes(dt, n_in), n_in);
      }
    }
    w[size_t(i)] = Tensor{dt, {rows[i], n_in}, dst};
    bias[size_t(i)] = randn(size_t(rows[i]), 50 + i);
  }
  const bool exact = dt != DType::F16 && dt != DType::BF16;
  for (int64_t n_tok : {1, 3}) {
    const auto x = randn(size_t(n_tok * n_in), 60);
    std::vector<std::vector<float>> got(3), want(3);
    MatmulOut outs[3];
    for (int i = 0; i < 3; ++i) {
      got[size_t(i)].assign(size_t(n_tok * rows[i]), -1.0f);
      want[size_t(i)].resize(size_t(n_tok * rows[i]));
      matmul(pool, w[size_t(i)], x.data(), n_tok, want[size_t(i)].data(), bias[size_t(i)].data());
      outs[i] = {&w[size_t(i)], got[size_t(i)].data(), bias[size_t(i)].data()};
    }
    matmul_shared(pool, outs, 3, x.data(), n_tok);
    for (int i = 0; i < 3; ++i)
      for (size_t j = 0; j < got[size_t(i)].size(); ++j) {
        if (exact) {
          ASSERT_EQ(got[size_t(i)][j], want[size_t(i)][j]) << "weight " << i << " at " << j;
        } else {
          ASSERT_NEAR(got[size_t(i)][j], want[size_t(i)][j], 1e-3) << "weight " << i << " at " << j;
        }
      }
  }
}

TEST(MatmulShared, MatchesOneMatmulPerWeight) {
  for (DType dt : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K})
    check_shared(dt);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantMatmul,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                                           DType::Q5_K, DType::Q6_K),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(G4Matmul, MatchesDequantizedReference) {
  ThreadPool pool(2);
  const int64_t n_out = 100, n_in = 96;
  auto wf = randn(size_t(n_out * n_in), 31, 0.5f);
  std::vector<uint8_t> wq(g4_weight_bytes(n_out, n_in));
  g4_quantize_weight(wf.data(), n_out, n_in, wq.data());
  Tensor w{DType::G4, {n_out, n_in}, wq.data()};
  EXPECT_EQ(w.nbytes(), static_cast<int64_t>(wq.size()));
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t n_tok : {1, 4, 17}) {
    auto x = randn(size_t(n_tok * n_in), 32);
    std::vector<float> y(size_t(n_tok * n_out));
    matmul(pool, w, x.data(), n_tok, y.data());
    for (int64_t r = 0; r < n_out; ++r) {
      get_row(w, r, row.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        double s = 0;
        for (int64_t i = 0; i < n_in; ++i) s += double(row[i]) * x[t * n_in + i];
        EXPECT_NEAR(y[t * n_out + r], s, 1e-3 * (1 + std::fabs(s)));
      }
    }
  }
}

// The prefill path calls sgemm from every pool thread at once. Debian's serial OpenBLAS
// corrupts results when called concurrently (it has no locking); this is the regression test.
TEST(Matmul, ConcurrentGemmMatchesRowDots) {
  ThreadPool pool(2);
  const int64_t n_out = 256, n_in = 96;
  auto wf = randn(size_t(n_out * n_in), 41, 0.5f);
  Tensor w{DType::F32, {n_out, n_in}, wf.data()};
  for (int rep = 0; rep < 200; ++rep)
    for (int64_t n_tok : {4, 5, 37}) {
      auto x = randn(size_t(n_tok * n_in), 42 + rep);
      std::vector<float> y(static_cast<size_t>(n_tok * n_out)), y1(static_cast<size_t>(n_out));
      matmul(pool, w, x.data(), n_tok, y.data());
      for (int64_t t = 0; t < n_tok; ++t) {
        matmul(pool, w, x.data() + t * n_in, 1, y1.data());
        for (int64_t r = 0; r < n_out; ++r)
          ASSERT_NEAR(y[size_t(t * n_out + r)], y1[size_t(r)],
                      1e-4 * (1 + std::fabs(y1[size_t(r)])))
              << "rep " << rep << " tokens " << n_tok << " row " << r;
      }
    }
}

}  // namespace
}  // namespace strata
