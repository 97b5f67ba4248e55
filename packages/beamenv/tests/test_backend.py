"""Backend selection: compiled library from the cache, NumPy fallback with a named warning."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from beamenv.backend import backend_cache_dir, build_libblond, ensure_backend, set_num_threads
from beamenv.errors import BeamEnvError


def test_cache_dir_is_keyed_by_blond_version(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("BEAMENV_CACHE_DIR", str(tmp_path))
    folder = backend_cache_dir()
    assert folder.parent == tmp_path / "blond"
    assert folder.name.startswith("blond-2.") and folder.name.endswith("-omp-opt")


def test_bad_arguments() -> None:
    with pytest.raises(BeamEnvError, match="backend must be one of"):
        ensure_backend("numba")
    with pytest.raises(BeamEnvError, match="positive integer"):
        set_num_threads(0)


def test_build_without_compiler_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(BeamEnvError, match="no C\\+\\+ compiler"):
        build_libblond(tmp_path / "lib")


def test_fallback_to_numpy_with_named_warning(tmp_path) -> None:
    """Fresh process, empty cache, no compiler: NumPy backend and a BackendWarning."""
    code = textwrap.dedent("""
        import warnings
        from beamenv.backend import ensure_backend
        from beamenv.errors import BackendWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = ensure_backend()
        from blond.utils import bmath
        named = [w for w in caught if issubclass(w.category, BackendWarning)]
        print(info.name, bmath.device, len(named))
    """)
    env = dict(os.environ, BEAMENV_CACHE_DIR=str(tmp_path), CXX=str(tmp_path / "none"))
    env.pop("LIBBLOND", None)
    env.pop("BEAMENV_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["numpy", "CPU_PY", "1"]


def test_env_uses_compiled_backend_when_available(tiny) -> None:
    from beamenv.envs.cycle import PSBPhaseCycleEnv

    env = PSBPhaseCycleEnv(fidelity=tiny, n_steps=2)
    _, info = env.reset(seed=0)
    if info["backend"] == "cpp":
        from blond.utils import bmath

        assert bmath.device == "CPU_CPP"
    else:  # no compiler on this machine: the named fallback
        assert env.simulator.backend.reason
