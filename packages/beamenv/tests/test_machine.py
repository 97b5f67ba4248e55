"""Machine parameters, programs and program files (no BLonD needed)."""

from __future__ import annotations

import numpy as np
import pytest

from beamenv.errors import BeamEnvError, ProgramFileError
from beamenv.machine import PSBRing, default_cycle, ek_from_momentum, load_program


def test_default_cycle_matches_real_psb_cycle() -> None:
    ring = PSBRing()
    cycle = default_cycle(ring)
    assert ring.circumference_m == pytest.approx(157.08, abs=0.01)
    ek = ek_from_momentum(cycle.momentum_eV_c[[0, -1]])
    assert ek[0] == pytest.approx(160e6, rel=0.01)
    assert ek[1] == pytest.approx(2.0e9, rel=0.02)
    # about 802,000 turns in the real cycle; at most about 4.8 keV per turn
    assert cycle.number_of_turns(ring) == pytest.approx(802_000, rel=0.02)
    assert 2.5e3 < cycle.max_energy_gain_per_turn_eV(ring) < 4.8e3
    assert np.all(np.diff(cycle.momentum_eV_c) >= 0)
    assert cycle.v2_V[0] / cycle.v1_V[0] == pytest.approx(0.75)
    assert cycle.v2_V[-1] == 0.0  # V2 switched off before extraction, as in the machine


def test_program_file_roundtrip_csv_and_npz(tmp_path) -> None:
    ring = PSBRing()
    t = np.linspace(0.275, 0.805, 50)
    b = np.linspace(0.232, 1.135, 50)
    csv = tmp_path / "prog.csv"
    csv.write_text("time_s,B_T,v1_V\n" + "\n".join(f"{a},{c},9000" for a, c in zip(t, b, strict=False)))
    prog = load_program(csv, ring, v2_ratio=0.5)
    assert prog.time_s[0] == 0.0 and prog.duration_s == pytest.approx(0.53)
    assert prog.momentum_eV_c[0] == pytest.approx(ring.momentum_from_field(0.232))
    assert np.allclose(prog.v2_V, 4500.0)
    npz = tmp_path / "prog.npz"
    np.savez(npz, time_s=t, Ek_eV=np.linspace(160e6, 2e9, 50))
    prog2 = load_program(npz, ring)
    assert ek_from_momentum(prog2.momentum_eV_c[-1]) == pytest.approx(2e9)


@pytest.mark.parametrize("text, match", [
    ("time_s,B_T\n0,0.3\n", "at least 2 data rows"),
    ("time_s,foo\n0,1\n1,2\n", "exactly one of"),
    ("time_s,B_T\n0,0.3\n0,0.4\n", "strictly increasing"),
    ("time_s,B_T\n0,0.3\n1,abc\n", "non-numeric"),
    ("time_s,B_T\n0,0.3\n1,nan\n", "non-finite"),
])
def test_bad_program_files(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ProgramFileError, match=match):
        load_program(path)


def test_missing_program_file_and_bad_ring(tmp_path) -> None:
    with pytest.raises(ProgramFileError, match="not found"):
        load_program(tmp_path / "nope.csv")
    with pytest.raises(BeamEnvError, match="intensity"):
        PSBRing(intensity=-1.0)
    with pytest.raises(BeamEnvError, match="gamma_t"):
        PSBRing(gamma_t=float("nan"))
