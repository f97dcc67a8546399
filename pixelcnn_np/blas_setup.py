"""Let OpenBLAS use its AVX-512 kernels on AMD CPUs that have AVX-512.

The matrix products of the convolution engine run in NumPy's OpenBLAS. OpenBLAS picks
its kernels when it is loaded (at `import numpy`) from the CPU model; on AMD Zen 4/5,
which do have AVX-512, the OpenBLAS in current NumPy wheels picks its AVX2 "Zen"
kernels. Measured on a 2-core AMD EPYC (Zen 5): float32 GEMM 64x1600 @ 1600x3136 at
190 GFLOPS with the default choice, 335 GFLOPS with OPENBLAS_CORETYPE=SkylakeX.

So, *before numpy is imported*, on a Linux CPU reporting the AVX-512 subsets the
SkylakeX kernels need, we set OPENBLAS_CORETYPE=SkylakeX. We never override a value
the user set, do nothing if numpy is already imported (too late to matter), and do
nothing when PIXELCNN_NP_NO_BLAS_TUNING=1. Import pixelcnn_np before numpy (as the
examples do) to benefit. Intel CPUs with AVX-512 get these kernels anyway.
"""

import os
import sys

_NEEDED = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}


def _cpu_info():
    """(vendor, set of flags) of the first CPU in /proc/cpuinfo, or ("", set())."""
    vendor, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return vendor, flags


def choose_openblas_kernels():
    """Set OPENBLAS_CORETYPE if it is safe and useful; return the value in effect (or None)."""
    if ("numpy" not in sys.modules and "OPENBLAS_CORETYPE" not in os.environ
            and os.environ.get("PIXELCNN_NP_NO_BLAS_TUNING", "") in ("", "0")):
        vendor, flags = _cpu_info()
        if vendor == "AuthenticAMD" and _NEEDED <= flags:
            os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    return os.environ.get("OPENBLAS_CORETYPE")


choose_openblas_kernels()
