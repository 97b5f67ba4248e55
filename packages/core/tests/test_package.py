import subprocess
import sys

import physml_core


def test_every_public_name_resolves():
    for name in physml_core.__all__:
        assert getattr(physml_core, name) is not None, name
    assert set(physml_core.__all__) <= set(dir(physml_core))


def test_cli_and_errors_import_without_torch():
    code = ("import sys, physml_core, physml_core.cli, physml_core.errors, physml_core.hdf5; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        physml_core.nope  # noqa: B018
