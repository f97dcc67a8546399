"""Process setup before numpy loads: OpenBLAS's AVX-512 kernels on AMD, and malloc that keeps freed memory.

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

Second, `keep_freed_memory`: a training step makes and drops the same large arrays every
step (each layer's output, 12.8 MB at batch 64 and 64 channels), and glibc's malloc gives
the freed top of its heap back to the OS (above M_TRIM_THRESHOLD, by default twice the
largest array it has freed), so the next step page-faults that memory in again. On the
VMs of this project that costs more than using it. Measured on a 2-core Intel Xeon VM
(THP in madvise mode), default net, batch 64, one thread: writing a fresh 12.8 MB array
took 3-34 ms, writing it again 0.5 ms; a training step page-faulted 9338 times and spent
24 ms in the kernel, against 1 fault and 1 ms with the settings below; whole steps took
0.635-0.644 s against 0.580-0.612 s (four pairs of runs, medians of 7); the peak RSS was
the same, 314 MB (the peak is the peak: only the memory between steps stays resident).
`keep_freed_memory()` sets, on glibc, M_TRIM_THRESHOLD to 2 GB (its largest value) and
M_MMAP_THRESHOLD to 32 MB (arrays up to that size come from the heap, where freed memory
is reused), unless the user set MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ or
GLIBC_TUNABLES for malloc. It is opt-in (PIXELCNN_NP_KEEP_FREED_MEMORY=1 at import, or a
call): it changes the whole process, and memory kept after a phase is reused by the next,
so a measurement of "peak RSS minus RSS before" (tests/test_memory.py's calibration) comes
out smaller under it (128.7 MB against about 142 MB for the seed net at batch 32).
"""

import ctypes
import ctypes.util
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


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = (1 << 31) - 1    # bytes of free heap top kept before giving it back to the OS (mallopt takes an int: 2 GB)
MMAP_THRESHOLD = 32 << 20         # larger allocations get their own mapping (glibc's own dynamic maximum)


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse (module docstring). Returns True if it
    did; False elsewhere (not Linux/glibc) or when the user chose malloc's thresholds."""
    if (not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or "malloc" in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):                         # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


choose_openblas_kernels()
if os.environ.get("PIXELCNN_NP_KEEP_FREED_MEMORY", "") == "1":
    keep_freed_memory()
