// Which vector instruction sets this CPU has, probed once at start. Kernels are compiled per ISA
// and chosen at run time; STRATA_ISA=scalar|avx2|avx512|avx512vnni caps the choice (tests use it
// to compare every path against the scalar reference). avx512vnni is AVX-512 plus VNNI and VBMI
// (Ice Lake, Zen 4 and later): only the decode kernels that gain from vpdpbusd and vpermt2b have
// a version of their own at that level; everything else runs its AVX-512 version there.
#pragma once

namespace strata {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3 };
constexpr Isa kTopIsa = Isa::Avx512Vnni;  // set_isa_cap(kTopIsa) lifts the cap

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512vnni = false, avx512vbmi = false;
};

const CpuFeatures& cpu_features();
Isa best_isa();             // best ISA usable here, capped by STRATA_ISA
bool isa_runs_here(Isa i);  // whether this CPU can run level i (the cap aside)
void set_isa_cap(Isa cap);  // for tests and benchmarks
const char* isa_name(Isa i);

}  // namespace strata
