// Which vector instruction sets this CPU has, probed once at start. Kernels are compiled per ISA
// and chosen at run time; STRATA_ISA=scalar|avx2|avx512 caps the choice (tests use it to compare
// every path against the scalar reference).
#pragma once

namespace strata {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false;
};

const CpuFeatures& cpu_features();
Isa best_isa();              // best ISA usable here, capped by STRATA_ISA
void set_isa_cap(Isa cap);   // for tests and benchmarks
const char* isa_name(Isa i);

}  // namespace strata
