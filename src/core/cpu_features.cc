#include "core/cpu_features.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

namespace strata {
namespace {
Isa g_cap = kTopIsa;
bool g_cap_read = false;
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures r;
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
      r.fma = c & bit_FMA;
      r.f16c = c & bit_F16C;
      const bool osxsave = c & bit_OSXSAVE;
      unsigned xlo = 0, xhi = 0;
      if (osxsave) __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
      const bool ymm = (xlo & 0x6) == 0x6, zmm = (xlo & 0xe6) == 0xe6;
      if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        r.avx2 = ymm && (b & bit_AVX2);
        r.avx512f = zmm && (b & bit_AVX512F);
        r.avx512bw = zmm && (b & bit_AVX512BW);
        r.avx512vl = zmm && (b & bit_AVX512VL);
        r.avx512vbmi = zmm && (c & bit_AVX512VBMI);
        r.avx512vnni = zmm && (c & bit_AVX512VNNI);
      }
    }
    return r;
  }();
  return f;
}

namespace {
// The best level this CPU runs, ignoring the cap.
Isa hardware_isa() {
  const CpuFeatures& f = cpu_features();
  Isa have = Isa::Scalar;
  if (f.avx2 && f.fma && f.f16c) have = Isa::Avx2;
  if (have == Isa::Avx2 && f.avx512f && f.avx512bw && f.avx512vl) have = Isa::Avx512;
  if (have == Isa::Avx512 && f.avx512vnni && f.avx512vbmi) have = Isa::Avx512Vnni;
  return have;
}
}  // namespace

void set_isa_cap(Isa cap) {
  g_cap = cap;
  g_cap_read = true;
}

Isa best_isa() {
  if (!g_cap_read) {
    g_cap_read = true;
    if (const char* e = std::getenv("STRATA_ISA")) {
      if (!std::strcmp(e, "scalar"))
        g_cap = Isa::Scalar;
      else if (!std::strcmp(e, "avx2"))
        g_cap = Isa::Avx2;
      else if (!std::strcmp(e, "avx512"))
        g_cap = Isa::Avx512;
    }
  }
  const Isa have = hardware_isa();
  return static_cast<int>(have) < static_cast<int>(g_cap) ? have : g_cap;
}

bool isa_runs_here(Isa isa) {
  return static_cast<int>(isa) <= static_cast<int>(hardware_isa());
}

const char* isa_name(Isa i) {
  switch (i) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx512Vnni:
      return "avx512vnni";
  }
  return "?";
}

}  // namespace strata
