# SPDX-License-Identifier: MIT
"""The mean-field pass's noise: torch's generator, or a counter-based one with a compiled CPU kernel.

Every mean-field forward draws one standard normal per example and output (per example, channel and
position in a convolution) and uses it as::

    Delta = sqrt(S + floor),   h = (G + Delta eps) scale,   eps / Delta kept for the backward

:func:`noisy_output_` does exactly this, in place, with the noise of one of two sources:

``"torch"`` (the default)
    ``torch.randn``: torch's global generator (Mersenne Twister on the CPU, Philox on CUDA). On the
    CPU it makes its uniforms one at a time on one thread: about 0.55 ms per 200,000 normals, the
    largest elementwise cost of a wide layer's step (docs/benchmarks.md).

``"counter"``
    SplitMix64 (Steele, Lea & Flood, OOPSLA 2014; passes BigCrush) read as a counter-based generator,
    with Box-Muller. For a call drawing ``n`` normals under the 62-bit ``key``, with ``P = ceil(n / 2)``
    pairs and ``j < P``::

        z_j      = splitmix64_output(state = (key + j) * 0x9E3779B97F4A7C15)
        u1, u2   = (z_j[40:64] + 1) / 2^24,  z_j[0:24] / 2^24            (24 bits each; exact in float32)
        eps_j     = sqrt(-2 log u1) cos(2 pi u2)                           (elements 0 .. P-1)
        eps_{P+j} = sqrt(-2 log u1) sin(2 pi u2)                           (elements P .. n-1)

    Exact standard normals up to the 24-bit grid (u1 in (0, 1], so |eps| <= 5.77: a tail of mass
    8e-9 is cut). Each call takes its key from the default generator of the output's device (one
    64-bit draw; or from the generator it is given), so ``torch.manual_seed`` and the checkpointed
    generator state govern it like any other draw, and a resumed run draws the same noise. On a CPU
    with a C compiler the draw and the arithmetic above are one pass of a small C kernel (vectorized,
    on ``torch.get_num_threads()`` threads): about 0.2 ms per 200,000 normals on one thread, 0.1 on
    two (``benchmarks/bench_noise.py``). Elsewhere (CUDA, float64, no compiler) the same generator
    runs as torch operations (:func:`counter_normal`); the two agree to float rounding (a test).

The kernel is built on first use with the system's C compiler (``$CC``, else ``cc``) into the cache
folder (:func:`ensemble_nets.data.cache.cache_dir`), keyed by its source, flags, compiler and CPU; about a
second. ``ENSEMBLE_NETS_NO_KERNEL=1`` turns it off. Where it cannot be built, one warning says why
and the torch-operations version runs instead.
"""
from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from ensemble_nets.data.cache import cache_dir

__all__ = ["NOISE_SOURCES", "counter_normal", "draw_key", "noise_args", "noisy_output_", "standard_normal",
           "standard_normal_"]

#: Where the mean-field noise comes from (see the module docstring).
NOISE_SOURCES = ("torch", "counter")

NO_KERNEL_ENV = "ENSEMBLE_NETS_NO_KERNEL"

_GAMMA, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_KEY_BITS = 62


def noise_args(source: str) -> dict:
    """The source as a model or layer argument: ``{}`` for the default ``"torch"``, so that configs and
    run folders written before the option existed still match, else ``{"noise": source}``."""
    return {} if source == "torch" else {"noise": source}


def _signed(value: int) -> int:
    """A uint64 constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _logical_shift(z: torch.Tensor, bits: int) -> torch.Tensor:
    """``z >> bits`` on the 64 bits of an int64 read as unsigned."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def draw_key(generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """One 62-bit key, a 0-d int64 tensor on ``device`` (no host sync on CUDA), from ``generator``
    (default: the default generator of ``device``, the one ``torch.randn`` on that device draws from)."""
    device = generator.device if generator is not None else torch.device(device)
    return torch.randint(0, 1 << _KEY_BITS, (), dtype=torch.int64, generator=generator, device=device)


def counter_normal(n: int, key: int | torch.Tensor, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """The ``n`` standard normals of the counter source under ``key``, by torch operations (any device).

    :param n: (int) How many.
    :param key: (int or 0-d int64 tensor) The stream, in [0, 2^62).
    :returns: (Tensor) Shape ``(n,)``; elements ``0..P-1`` are the cosines, ``P..n-1`` the sines
        (``P = ceil(n / 2)``), as in the module docstring.
    """
    if isinstance(key, int) and not 0 <= key < 1 << _KEY_BITS:
        raise ValueError(f"key must be in [0, 2**{_KEY_BITS}), got {key}")
    if isinstance(key, torch.Tensor):
        device = key.device if device is None else device
        key = key.to(device)
    pairs = (n + 1) // 2
    z = (torch.arange(pairs, dtype=torch.int64, device=device) + key) * _signed(_GAMMA)
    z = (z ^ _logical_shift(z, 30)) * _signed(_MIX1)
    z = (z ^ _logical_shift(z, 27)) * _signed(_MIX2)
    z = z ^ _logical_shift(z, 31)
    work = torch.float64 if dtype == torch.float64 else torch.float32
    u1 = (_logical_shift(z, 40).to(work) + 1.0) * 2.0 ** -24
    u2 = (z & 0xFFFFFF).to(work) * 2.0 ** -24
    radius, angle = torch.sqrt(-2.0 * torch.log(u1)), (2.0 * math.pi) * u2
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)])[:n].to(dtype)


# -- the compiled CPU kernel ---------------------------------------------------------------------
_SOURCE = r"""
#include <math.h>
#include <stdint.h>

#define BLOCK 512 /* pairs per block: the block's radii and angles stay in L1 */

/* radius and angle of the pairs j0 .. j0 + len - 1 (SplitMix64 output of state (key + j) * gamma) */
static void pairs(uint64_t key, int64_t j0, float *restrict r, float *restrict c, float *restrict s) {
    #pragma omp simd
    for (int64_t i = 0; i < BLOCK; ++i) {
        uint64_t z = (key + (uint64_t)(j0 + i)) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u1 = ((float)(uint32_t)(z >> 40) + 1.0f) * (1.0f / 16777216.0f);
        const float u2 = (float)(uint32_t)(z & 0xFFFFFFu) * (1.0f / 16777216.0f);
        r[i] = sqrtf(-2.0f * logf(u1));
        s[i] = 6.28318530717958648f * u2;
    }
    #pragma omp simd
    for (int64_t i = 0; i < BLOCK; ++i) c[i] = r[i] * cosf(s[i]);
    #pragma omp simd
    for (int64_t i = 0; i < BLOCK; ++i) s[i] = r[i] * sinf(s[i]);
}

/* h <- (h + sqrt(v + floor) eps) scale, v <- eps / sqrt(v + floor); or, with h == 0, v <- eps */
static void apply(float *restrict h, float *restrict v, const float *restrict eps, int64_t len, float floor,
                  float scale) {
    if (!h) {
        for (int64_t i = 0; i < len; ++i) v[i] = eps[i];
        return;
    }
    #pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
        const float d = sqrtf(v[i] + floor);
        h[i] = (h[i] + d * eps[i]) * scale;
        v[i] = eps[i] / d;
    }
}

void en_noisy_output(float *h, float *v, int64_t n, uint64_t key, float floor, float scale, int threads) {
    const int64_t n_pairs = (n + 1) / 2, blocks = (n_pairs + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; ++b) {
        float r[BLOCK], c[BLOCK], s[BLOCK];
        const int64_t j0 = b * BLOCK;
        const int64_t len = n_pairs - j0 < BLOCK ? n_pairs - j0 : BLOCK;
        pairs(key, j0, r, c, s);
        apply(h ? h + j0 : 0, v + j0, c, len, floor, scale);  /* cosines: elements j */
        const int64_t len_s = n - n_pairs - j0 < len ? n - n_pairs - j0 : len;
        if (len_s > 0) apply(h ? h + n_pairs + j0 : 0, v + n_pairs + j0, s, len_s, floor, scale);  /* sines */
    }
}
"""

_kernel_lock = threading.Lock()
_kernel_state: dict[str, object] = {}


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        return ""


def _cpu_signature() -> str:
    """What the built code may assume of the CPU (``-march=native``): the flags line where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Tried in order: vectorized log/cos/sin from glibc's libmvec with the CPU's own instructions (on x86 without
#: reciprocal approximations, which would turn eps / sqrt(0) into NaN instead of inf), then without
#: x86's options, then without libmvec, then plain C (correct everywhere, slower).
_MVEC_LINK = ["-fopenmp", "-lmvec", "-lm", "-Wl,-z,defs"]
_BUILDS = (
    (["-O3", "-march=native", "-mprefer-vector-width=512", "-mno-recip", "-ffast-math", "-fopenmp"], _MVEC_LINK),
    (["-O3", "-march=native", "-mno-recip", "-ffast-math", "-fopenmp"], _MVEC_LINK),
    (["-O3", "-march=native", "-ffast-math", "-fopenmp"], _MVEC_LINK),
    (["-O3", "-ffast-math", "-fopenmp"], ["-fopenmp", "-lm", "-Wl,-z,defs"]),
    (["-O3", "-fopenmp"], ["-fopenmp", "-lm"]),
    (["-O3"], ["-lm"]),
)


def _build(compiler: str, target: Path) -> None:
    """Compile, then link without ``-ffast-math`` (linking with it would set flush-to-zero for the
    whole process); the library is moved into place only when complete."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src, obj, lib = Path(tmp) / "noise.c", Path(tmp) / "noise.o", Path(tmp) / "noise.so"
        src.write_text(_SOURCE)
        errors = []
        for compile_flags, link_flags in _BUILDS:
            done = subprocess.run([compiler, *compile_flags, "-fPIC", "-std=c99", "-c", str(src), "-o", str(obj)],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                done = subprocess.run([compiler, "-shared", str(obj), "-o", str(lib), *link_flags],
                                      capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(lib, target)
                return
            errors.append(done.stderr.strip()[-300:])
        raise RuntimeError("; ".join(errors))


def _load(compiler: str, target: Path) -> ctypes.CDLL:
    """The library at ``target``, built when missing, rebuilt once when it cannot be loaded (a corrupt file)."""
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _build(compiler, target)
    try:
        return ctypes.CDLL(str(target))
    except OSError:
        _build(compiler, target)
        return ctypes.CDLL(str(target))


def _kernel():
    """The loaded kernel, built on first use; ``None`` where it is turned off or cannot be built."""
    if "lib" in _kernel_state:  # every call after the first: no lock on the training step's path
        return _kernel_state["lib"]
    with _kernel_lock:
        if "lib" in _kernel_state:
            return _kernel_state["lib"]
        lib = None
        if os.environ.get(NO_KERNEL_ENV, "") not in ("", "0"):
            pass
        elif (compiler := _compiler()) is None:
            warnings.warn("noise='counter': no C compiler found ($CC, cc, gcc, clang); the counter noise runs "
                          "as torch operations (same numbers to float rounding, slower). Install a compiler "
                          "for the fast kernel.",
                          RuntimeWarning, stacklevel=3)
        else:
            tag = hashlib.sha256("\0".join([_SOURCE, repr(_BUILDS), compiler, _compiler_version(compiler),
                                             _cpu_signature(), sys.platform]).encode())
            target = cache_dir() / "kernels" / f"counter_noise-{tag.hexdigest()[:16]}.so"
            try:
                lib = _load(compiler, target)
                lib.en_noisy_output.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64,
                                                ctypes.c_float, ctypes.c_float, ctypes.c_int]
                lib.en_noisy_output.restype = None
            except (OSError, RuntimeError, AttributeError) as error:
                lib = None
                warnings.warn(f"noise='counter': the C kernel could not be built or loaded ({error}); the counter "
                              f"noise runs as torch operations (same numbers to float rounding, slower). "
                              f"Set {NO_KERNEL_ENV}=1 to silence this.", RuntimeWarning, stacklevel=3)
        _kernel_state["lib"] = lib
        return lib


def _kernel_applies(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors)


def standard_normal_(out: torch.Tensor, noise: str = "torch", *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``out`` with fresh standard normals from the ``noise`` source; returns ``out``."""
    if noise == "torch":
        return out.normal_(generator=generator)  # the stream of torch.randn_like
    if noise not in NOISE_SOURCES:
        raise ValueError(f"noise must be one of {NOISE_SOURCES}, got {noise!r}")
    key = draw_key(generator, out.device)
    if _kernel_applies(out) and (lib := _kernel()) is not None:
        lib.en_noisy_output(None, out.data_ptr(), out.numel(), int(key), 0.0, 1.0, torch.get_num_threads())
        torch.autograd.graph.increment_version(out)  # written behind autograd's back
        return out
    return out.copy_(counter_normal(out.numel(), key, dtype=out.dtype, device=out.device).view(out.shape))


def standard_normal(like: torch.Tensor, noise: str = "torch", *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Fresh standard normals shaped like ``like``, from the ``noise`` source."""
    out = torch.empty_like(like) if noise == "torch" else torch.empty(like.shape, dtype=like.dtype,
                                                                        device=like.device)
    return standard_normal_(out, noise, generator=generator)


def noisy_output_(mean: torch.Tensor, s: torch.Tensor, *, floor: float = 0.0, scale: float = 1.0,
                  noise: str = "torch", eps: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The noisy mean-field output, in place: ``Delta = sqrt(s + floor)``, ``h = (mean + Delta eps) scale``.

    :param mean: (Tensor) G, overwritten with h.
    :param s: (Tensor) The variance channel S (same shape), overwritten with ``eps / Delta``.
    :param floor: (float) Added to ``s`` under the square root.
    :param scale: (float) Applied to the sum.
    :param noise: (str) One of :data:`NOISE_SOURCES`.
    :param eps: (Tensor, optional) Given noise in place of a fresh draw (left unchanged).
    :returns: (tuple) ``(h, eps / Delta)``: the tensors ``mean`` and ``s``.
    """
    if mean.shape != s.shape:
        raise ValueError(f"mean and s must have one shape, got {tuple(mean.shape)} and {tuple(s.shape)}")
    if noise not in NOISE_SOURCES:
        raise ValueError(f"noise must be one of {NOISE_SOURCES}, got {noise!r}")
    if eps is None and noise == "counter" and _kernel_applies(mean, s) and (lib := _kernel()) is not None:
        lib.en_noisy_output(mean.data_ptr(), s.data_ptr(), mean.numel(), int(draw_key(generator)), floor, scale,
                            torch.get_num_threads())
        torch.autograd.graph.increment_version((mean, s))  # written behind autograd's back
        return mean, s
    if eps is None:
        eps = standard_normal(mean, noise, generator=generator)
    delta = s.add_(floor).sqrt_() if floor else s.sqrt_()
    h = mean.addcmul_(delta, eps)
    if scale != 1.0:
        h.mul_(scale)
    return h, torch.div(eps, delta, out=s)
