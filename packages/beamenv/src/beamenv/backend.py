"""Select BLonD's computational backend, building the fast C++ library on first use.

BLonD 2.2.4 ships C++ sources but no compiled library.  It looks for the library when the module
``blond.utils.butils_wrap_cpp`` is imported (and again in ``load_libblond``): at the path in the
environment variable ``LIBBLOND`` if set, else at ``cpp_routines/libblond_double.so`` inside the
installed package.  Without it BLonD silently falls back to Numba, which on two shared cores is
erratic and slow (30-470 turns/s against about 2700 for the OpenMP build at 1e5 macroparticles).

:func:`ensure_backend` therefore

1. looks for ``libblond_double.so`` in a per-user cache folder keyed by the BLonD version, the CPU
   architecture and its vector extensions (``$BEAMENV_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/physml/blond``, else ``~/.cache/physml/blond``);
2. if missing and a C++ compiler exists, builds it once with ``blond-compile -p --optimize``
   (OpenMP, fast math, AVX2/FMA when available) under a file lock, so concurrent processes (pytest
   workers, ``AsyncVectorEnv`` workers) wait for one build instead of racing, and prints one line
   to stderr saying so;
3. points BLonD at it (``LIBBLOND`` before import, ``load_libblond`` + ``bmath.use_cpp()`` after);
4. otherwise falls back to BLonD's NumPy backend with a :class:`~beamenv.errors.BackendWarning`.
   Numba is never selected.

The number of OpenMP threads is set through ``omp_set_num_threads`` of the loaded library (default
1: for the few thousand macroparticles of RL training one thread per environment is fastest, and
vector environments parallelise across processes instead).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import BackendWarning, BeamEnvError

__all__ = [
    "BackendInfo",
    "backend_cache_dir",
    "build_libblond",
    "ensure_backend",
    "set_num_threads",
]

_LIB_NAME = "libblond_double.so"
_BACKEND_CHOICES = ("auto", "cpp", "numpy")


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """Which BLonD backend this process uses.

    Attributes:
        name: ``"cpp"`` (compiled OpenMP library) or ``"numpy"``.
        library: path of the compiled library, or ``None``.
        threads: OpenMP threads used by the compiled library (1 for NumPy).
        built_now: True when this process compiled the library.
        blond_version: the installed BLonD version.
        reason: why the NumPy fallback was chosen (empty for ``"cpp"``).
    """

    name: str
    library: str | None
    threads: int
    built_now: bool
    blond_version: str
    reason: str = ""


_CURRENT: BackendInfo | None = None


def _blond_version() -> str:
    try:
        return version("blond")
    except PackageNotFoundError as exc:  # pragma: no cover - blond is a dependency
        raise BeamEnvError("BLonD is not installed: pip install 'blond>=2.2.4'") from exc


def _cpu_tag() -> str:
    """Short hash of the CPU's vector extensions (the build uses -mavx2/-mfma when present)."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                wanted = {"sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "asimd"}
                flags = " ".join(sorted(set(line.split(":", 1)[1].split()) & wanted))
                break
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def backend_cache_dir() -> Path:
    """Folder holding the compiled library for this BLonD version and CPU (not created here)."""
    root = os.environ.get("BEAMENV_CACHE_DIR")
    if root:
        base = Path(root).expanduser() / "blond"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "physml" / "blond"
    key = f"blond-{_blond_version()}-{platform.machine()}-{_cpu_tag()}-omp-opt"
    return base / key


def _library_loads(path: Path) -> bool:
    try:
        ctypes.CDLL(str(path))
    except OSError:
        return False
    return True


def _compiler() -> str | None:
    name = os.environ.get("CXX", "g++")
    return shutil.which(name)


def build_libblond(target_dir: Path | None = None, *, quiet: bool = False) -> Path:
    """Build BLonD's OpenMP + optimised C++ library into ``target_dir`` (default: the cache).

    Equivalent to ``blond-compile -p --optimize --libname DIR/libblond``, run with this Python.
    Safe against concurrent callers: an exclusive file lock serialises builds, and the library is
    moved into place atomically.  Returns the path of ``libblond_double.so``.

    Raises:
        BeamEnvError: no C++ compiler, or the build failed (the log path is in the message).
    """
    target = Path(target_dir) if target_dir is not None else backend_cache_dir()
    lib = target / _LIB_NAME
    compiler = _compiler()
    if compiler is None:
        raise BeamEnvError("no C++ compiler found (set CXX or install g++) to build BLonD's backend")
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / (target.name + ".lock")
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if lib.exists() and _library_loads(lib):
                return lib  # another process finished the build while we waited
            if not quiet:
                print(f"beamenv: building BLonD's C++ backend (OpenMP, optimised) once into "
                      f"{target} (about 30 s)...", file=sys.stderr, flush=True)
            tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
            log_path = target.parent / (target.name + ".build.log")
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "blond.compile", "-p", "--optimize",
                   "--compiler", compiler, "--libname", str(tmp / "libblond")]
            env = dict(os.environ, PYTHONWARNINGS="ignore")
            with open(log_path, "w") as log:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      check=False)
            built = tmp / _LIB_NAME
            if proc.returncode != 0 or not built.exists() or not _library_loads(built):
                shutil.rmtree(tmp, ignore_errors=True)
                raise BeamEnvError(f"building BLonD's C++ backend failed; see {log_path}")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
            if not quiet:
                print(f"beamenv: BLonD backend built in {time.perf_counter() - start:.0f} s",
                      file=sys.stderr, flush=True)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return lib


def set_num_threads(threads: int) -> None:
    """Set the OpenMP threads of the loaded compiled library (no-op for the NumPy backend)."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise BeamEnvError(f"threads must be a positive integer, got {threads!r}")
    global _CURRENT
    if _CURRENT is None or _CURRENT.name != "cpp" or _CURRENT.library is None:
        return
    lib = ctypes.CDLL(_CURRENT.library)
    with contextlib.suppress(AttributeError):
        lib.omp_set_num_threads(ctypes.c_int(threads))
    _CURRENT = dataclasses.replace(_CURRENT, threads=threads)


def _use_numpy(reason: str, built_now: bool = False) -> BackendInfo:
    global _CURRENT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BLonD warns that its own library path is missing
        from blond.utils import bmath

    bmath.use_py()
    _CURRENT = BackendInfo("numpy", None, 1, built_now, _blond_version(), reason)
    return _CURRENT


def ensure_backend(backend: str | None = None, *, threads: int | None = None,
                   quiet: bool = False) -> BackendInfo:
    """Select (building if needed) BLonD's backend for this process; idempotent.

    Args:
        backend: ``"auto"`` (compiled library if it can be had, else NumPy with a
            :class:`BackendWarning`), ``"cpp"`` (error if it cannot be had) or ``"numpy"``.
            Default: ``$BEAMENV_BACKEND`` or ``"auto"``.
        threads: OpenMP threads (default ``$BEAMENV_THREADS`` or 1).
        quiet: do not print the one-line build message.

    Returns:
        The :class:`BackendInfo` in use.
    """
    global _CURRENT
    choice = (backend or os.environ.get("BEAMENV_BACKEND") or "auto").lower()
    if choice not in _BACKEND_CHOICES:
        raise BeamEnvError(f"backend must be one of {', '.join(_BACKEND_CHOICES)}, got {choice!r}")
    if threads is None:
        env_threads = os.environ.get("BEAMENV_THREADS", "1")
        try:
            threads = int(env_threads)
        except ValueError:
            raise BeamEnvError(f"BEAMENV_THREADS must be an integer, got {env_threads!r}") from None
    if _CURRENT is not None and (choice == "auto" or choice == _CURRENT.name):
        if threads != _CURRENT.threads:
            set_num_threads(threads)
        return _CURRENT
    if choice == "numpy":
        return _use_numpy("requested")

    built_now = False
    lib: Path | None = None
    reason = ""
    user_lib = os.environ.get("LIBBLOND")
    if user_lib and Path(user_lib).is_file() and _library_loads(Path(user_lib)):
        lib = Path(user_lib)
    else:
        cached = backend_cache_dir() / _LIB_NAME
        if cached.is_file() and _library_loads(cached):
            lib = cached
        else:
            try:
                lib = build_libblond(quiet=quiet)
                built_now = True
            except BeamEnvError as exc:
                reason = str(exc)
            except OSError as exc:  # e.g. read-only home folder
                reason = f"cannot write the backend cache: {exc}"
    if lib is None:
        if choice == "cpp":
            raise BeamEnvError(f"the C++ backend is unavailable: {reason}")
        warnings.warn(f"BLonD's C++ backend is unavailable ({reason}); using the much slower "
                      "NumPy backend", BackendWarning, stacklevel=2)
        return _use_numpy(reason)

    os.environ["LIBBLOND"] = str(lib)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from blond.utils import bmath, butils_wrap_cpp

    if butils_wrap_cpp.get_libblond() is None or getattr(
            butils_wrap_cpp.get_libblond(), "_name", None) != str(lib):
        butils_wrap_cpp.load_libblond("double")  # blond was imported before LIBBLOND was set
    if butils_wrap_cpp.get_libblond() is None:  # pragma: no cover - verified by _library_loads
        if choice == "cpp":
            raise BeamEnvError(f"BLonD could not load {lib}")
        return _use_numpy(f"BLonD could not load {lib}", built_now)
    bmath.use_cpp()
    _CURRENT = BackendInfo("cpp", str(lib), threads, built_now, _blond_version())
    set_num_threads(threads)
    return _CURRENT
