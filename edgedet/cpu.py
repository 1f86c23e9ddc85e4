"""What this CPU is and which instruction sets it has (read from /proc/cpuinfo, never assumed).

Several choices depend on it: the measured default backend is cached per CPU, benchmarks report the flags, and
INT8 quantization for OpenVINO keeps weights to 7 bits on CPUs whose int8 dot products can saturate (no VNNI)."""

from __future__ import annotations

import platform
from functools import lru_cache

# flags that decide which kernels run: reported with every benchmark
REPORTED = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# instructions that accumulate u8 x s8 products in 32 bits (VNNI, AMX); without them, x86 int8 kernels use
# vpmaddubsw, whose 16-bit intermediate sums can saturate (OpenVINO's "saturation issue")
INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset]:
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    return _cpuinfo()[0]


def isa_flags() -> list[str]:
    """The REPORTED flags this CPU has, in REPORTED order."""
    flags = _cpuinfo()[1]
    return [f for f in REPORTED if f in flags]


def vector_flags() -> list[str]:
    """Every SIMD flag (avx*, amx*, fma, sse4*, f16c), sorted: what identifies a CPU for cached measurements."""
    return sorted(f for f in _cpuinfo()[1] if f.startswith(("avx", "amx", "fma", "sse4", "f16c")))


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def int8_saturates() -> bool:
    """True on x86 CPUs without VNNI/AMX, whose int8 convolutions sum u8 x s8 pairs in 16 bits (vpmaddubsw) and
    can saturate; ARM (Jetson, Apple) and VNNI/AMX CPUs do not."""
    return is_x86() and not has_int8_dot()


def has_int8_dot() -> bool:
    """True when int8 convolutions accumulate in 32 bits without saturation (VNNI or AMX)."""
    return any(f in _cpuinfo()[1] for f in INT8_DOT)
