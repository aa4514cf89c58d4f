"""The PHAST sweep compiled ahead of time into an extension module, so that a shortest-path child
answers its shard without importing numba.

Why: a child that loads even one kernel from numba's cache first imports numba and builds its whole
compilation context (every typing and lowering registry, LLVM, and scipy's BLAS bindings when scipy
is installed): 0.5-2 s measured on the project's shared 2-core machine (load average 2-10), most of a
child's start-up (``benchmarks/shortest_path.py`` breaks it down). The same kernel
compiled by ``numba.pycc`` into a plain extension module imports in about a millisecond and needs
neither numba nor llvmlite at run time.

The module's name carries a digest of the kernel source and of the exported signature
(:func:`module_name`), so an edited kernel never runs stale compiled code: the new name is simply
not found, and the job falls back to numba's JIT (:func:`load`), which gives the same results.
``make setup`` builds it into the virtual environment (``python -m batch_fanout_job.compiled_kernels``;
it needs a C compiler, and is skipped with a note without one). The shortest-path image builds it in a
build stage of its Dockerfile (``--strict``: there a missing compiler fails the build) and its job stage
gets only the module; the JIT kernels stay warm in its numba cache for Dijkstra and for
``BATCH_FANOUT_KERNELS=jit``.

Code generation is for a generic x86-64 CPU (``numba.pycc``'s default), so the module runs on any
host of the architecture; measured interleaved on the 192x192 grid it was as fast as the JIT kernel
compiled for this host, within the noise (about 10%) of the shared machine, and a child's CPU time
for its work was the same with either.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import sys
import sysconfig
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

PREFIX = "_batch_fanout_kernels_"
# The exported PHAST sweep (``hierarchy_kernels.phast_sweep``): the hierarchy's arrays as
# :class:`batch_fanout_job.hierarchy.Phast` keeps them (C-contiguous int64 / int32), the sweep's width
# and its workspaces.
PHAST_SWEEP_SIGNATURE = (
    "void(i8[::1], i4[::1], i8[::1], i8[::1], i4[::1], i8[::1], i8[::1], i8, i8[::1], i8[::1], "
    "i4[::1], i4[::1], i4[::1], i8[::1], i8[::1], i8[::1])"
)
KERNELS_VARIABLE = "BATCH_FANOUT_KERNELS"
KERNEL_CHOICES = ("auto", "jit")
_KERNEL_SOURCE = Path(__file__).with_name("hierarchy_kernels.py")


def module_name() -> str:
    """The name of the compiled module for the kernel source as it is now."""
    digest = hashlib.sha256(_KERNEL_SOURCE.read_bytes())
    digest.update(PHAST_SWEEP_SIGNATURE.encode())
    return PREFIX + digest.hexdigest()[:16]


def kernel_choice(environ: Any) -> str:
    """The kernels a job is asked to use: ``auto`` (compiled when built, else the JIT) or ``jit``.

    :param environ: the job's environment (``BATCH_FANOUT_KERNELS``, default ``auto``).
    :raises ValueError: naming the variable when its value is neither.
    """
    value = str(environ.get(KERNELS_VARIABLE, "") or "auto").strip().lower()
    if value not in KERNEL_CHOICES:
        raise ValueError(f"{KERNELS_VARIABLE}={value!r}: expected one of {', '.join(KERNEL_CHOICES)}")
    return value


def load() -> ModuleType | None:
    """The compiled module of the current kernel source, or None when it was not built (or was
    built from another version of the source, or cannot load here)."""
    name = module_name()
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        # Built for another Python or numpy ABI: the JIT kernels give the same results.
        return None


def build(output_dir: Path) -> Path:
    """Compile the PHAST sweep into ``output_dir`` and remove the modules of older sources there.

    :param output_dir: a folder on the jobs' ``sys.path`` (the virtual environment's site-packages).
    :returns: the extension module's path.
    """
    with warnings.catch_warnings():
        # numba.pycc is "pending deprecation" (since numba 0.57) with no replacement yet; it works.
        warnings.simplefilter("ignore")
        from numba.pycc import CC

        from batch_fanout_job import hierarchy_kernels

        name = module_name()
        compiler = CC(name)
        compiler.output_dir = str(output_dir)
        compiler.export("phast_sweep", PHAST_SWEEP_SIGNATURE)(hierarchy_kernels.phast_sweep.py_func)
        compiler.compile()
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    built = output_dir / f"{name}{suffix}"
    for stale in output_dir.glob(f"{PREFIX}*"):
        if stale != built:
            stale.unlink()
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batch_fanout_job.compiled_kernels",
        description="Compile the PHAST sweep ahead of time (once per kernel source; needs a C compiler).",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(sysconfig.get_paths()["platlib"]),
        help="where to write the module (default: this interpreter's site-packages)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when it is up to date")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) when it cannot be built, rather than leave the jobs on the JIT (image builds)",
    )
    args = parser.parse_args(argv)
    if not args.force and load() is not None:
        print(f"compiled kernels up to date: {module_name()}")
        return 0
    try:
        built = build(args.output_dir)
    except Exception as error:  # no compiler, no setuptools: the JIT still works
        if args.strict:
            print(f"compiled kernels not built: {error}", file=sys.stderr)
            return 1
        print(f"compiled kernels not built ({error}); the jobs use numba's JIT kernels", file=sys.stderr)
        return 0
    print(f"compiled kernels: {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
