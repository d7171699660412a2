#include "ops/cpu/float_kernels.h"

namespace strata::cpu {

const FloatKernels& float_kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
    case Isa::Avx512Vnni:
      return float_kernels_avx512();
    case Isa::Avx2:
      return float_kernels_avx2();
    default:
      return float_kernels_scalar();
  }
}

const FloatKernels& float_kernels() {
  return float_kernels_for(best_isa());
}

const StripGemm* strip_gemm() {
  return best_isa() >= Isa::Avx512 ? &strip_gemm_avx512() : nullptr;
}

}  // namespace strata::cpu
