"""Build the fastsoftmax extension: Cython wrapper + C core, OpenMP when the compiler has it.

ISA-specific code (AVX2, AVX-512) is enabled per function with target attributes inside
csrc/kernels/*.c, so no ISA flag is passed here and the extension runs on any x86-64 CPU.
FASTSOFTMAX_NATIVE=1 opts in to -march=native for a local build.
FASTSOFTMAX_NO_OPENMP=1 builds without OpenMP. FASTSOFTMAX_SANITIZE=1 adds ASan/UBSan.

Debug information: a wheel or a plain install (`pip install .`, `python -m build`, cibuildwheel) is built
with -g0, which keeps the repaired Linux wheel about a third of its size; an in-place or editable build
(`python setup.py build_ext --inplace`, `pip install -e .`) keeps Python's -g for debugging, and
FASTSOFTMAX_DEBUG=1 keeps it in any build.
"""
import os
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = [
    "src/fastsoftmax/_core.pyx",
    "csrc/rows.c",
    "csrc/threads.c",
    "csrc/select.c",
    "csrc/cpu.c",
    "csrc/kernels/portable.c",
    "csrc/kernels/avx2.c",
    "csrc/kernels/avx512.c",
]


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def _openmp_flags(compiler):
    """Return (compile, link) flags for OpenMP, or ([], []) when the compiler cannot build and link it."""
    if _flag("FASTSOFTMAX_NO_OPENMP"):
        return [], []
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n")
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        return flags, flags
    except Exception:  # no OpenMP: build single-threaded, show_config() says so
        return [], []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _accepts(compiler, flag):
    """Whether the C compiler compiles a trivial file with `flag` without a warning (-Werror)."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("int fsm_probe(int x) { return x + 1; }\n")
        compiler.compile([src], output_dir=tmp, extra_postargs=[flag, "-Werror"])
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def run(self):
        # setuptools clears self.inplace while it builds, so record here whether this is a local build
        self._local_build = bool(self.inplace or self.editable_mode)
        super().run()

    def build_extensions(self):
        omp_compile, omp_link = _openmp_flags(self.compiler)
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            # /std:c11: the conforming preprocessor, which rows.c needs for _Pragma("omp ...") in macros.
            base = ["/O2", "/fp:precise", "/std:c11"]
        else:
            base = ["-O3", "-ffp-contract=off", "-fno-strict-aliasing", "-Wno-unused-function"]
            if _flag("FASTSOFTMAX_NATIVE"):
                base.append("-march=native")
            if not (getattr(self, "_local_build", False) or _flag("FASTSOFTMAX_DEBUG")):
                base.append("-g0")  # after Python's own CFLAGS (-g): no debug info in a release build
        san = []
        if _flag("FASTSOFTMAX_SANITIZE") and not msvc:
            san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
            base = [f for f in base if f != "-O3"] + ["-O1", "-g"]
        release = not (msvc or getattr(self, "_local_build", False) or _flag("FASTSOFTMAX_DEBUG") or san)
        # The kernels without GCC's constant-propagation clones: their inline row functions take constant
        # form arguments (shift, clamp, source type) and are inlined or unswitched anyway; the clones
        # were 13 kB of the AVX-512 set's 78 kB of code and 8 kB of the compressed wheel. Without them
        # the exp row function tests its form flags in the loop: the AVX-512 exp pass measured
        # 1.010-1.017x (bench/micro/ab.sh, Zen 4), AVX2 and the short rows (short.sh) within noise.
        # Local builds too, so that benchmarks time the wheel's kernels.
        kernel_flags = ["-fno-ipa-cp-clone"] if not msvc and _accepts(self.compiler, "-fno-ipa-cp-clone") else []
        if (release or kernel_flags) and hasattr(self.compiler, "_compile"):
            # the Cython module's C (argument checks and dispatch: 106 kB of code at -O3, 58 kB at -Os) for
            # size, the wheel's limit; the kernels keep -O3. Per-call time of small calls measured the same
            # (softmax of (1, 16): 450-760 ns either way on Zen 4, within this machine's noise).
            compile_one = self.compiler._compile

            def compile_small(obj, src, ext, cc_args, extra_postargs, pp_opts):
                if release and os.path.basename(src) == "_core.c":
                    extra_postargs = list(extra_postargs) + ["-Os"]
                if os.path.basename(os.path.dirname(src)) == "kernels":
                    extra_postargs = list(extra_postargs) + kernel_flags
                return compile_one(obj, src, ext, cc_args, extra_postargs, pp_opts)

            self.compiler._compile = compile_small
        for ext in self.extensions:
            omp = ext.name == "fastsoftmax._core"  # the only module that runs threads
            flags = base
            if release and ext.name == "fastsoftmax._plan":
                # argument checks: Cython's object code, a third of the wheel at -O3; -Os halves it
                flags = [f for f in base if f != "-O3"] + ["-Os"]
            ext.extra_compile_args = flags + (omp_compile if omp else []) + san
            # release builds on Linux drop the symbol tables too (the wheel's size limit, 400 kB)
            strip = ["-s"] if release and sys.platform.startswith("linux") else []
            ext.extra_link_args = (omp_link if omp else []) + san + strip
            if omp and omp_compile:
                ext.define_macros.append(("FSM_WITH_OPENMP", "1"))
        super().build_extensions()


# the wheel is built against NumPy 2.x and must load on NumPy 1.26 too
NUMPY_MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("NPY_TARGET_VERSION", "NPY_1_25_API_VERSION")]

extensions = [
    # the plan and the argument checks (pure Cython, no C core): see src/fastsoftmax/_plan.pyx
    Extension("fastsoftmax._plan", sources=["src/fastsoftmax/_plan.pyx"],  # reads csrc/ops.h's op table
              include_dirs=["csrc", numpy.get_include()], define_macros=list(NUMPY_MACROS)),
    Extension("fastsoftmax._core", sources=SOURCES,
              include_dirs=["csrc", numpy.get_include()], define_macros=list(NUMPY_MACROS)),
]

setup(
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"embedsignature": True},
                          include_path=["src"]),
    cmdclass={"build_ext": BuildExt},
)
