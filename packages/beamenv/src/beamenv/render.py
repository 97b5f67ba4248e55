"""Pictures of the beam: line density, phase-space density with the RF bucket, RF voltage.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global state, no display).
"""

from __future__ import annotations

import math

import numpy as np

from .bucket import Bucket

__all__ = ["plot_episode", "plot_profiles", "render_beam"]


def render_beam(dt_s: np.ndarray, de_eV: np.ndarray, bucket: Bucket, title: str = "",
                n_bins: int = 64, size_px: tuple[int, int] = (900, 300)) -> np.ndarray:
    """Draw the beam state; returns an RGB image, shape (height, width, 3), dtype uint8.

    Panels: line density over the revolution period; phase-space density (dt, dE) with the
    separatrix of ``bucket``; the total RF voltage V1 sin + V2 sin over the period.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = size_px
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax_prof, ax_ps, ax_rf = fig.subplots(1, 3)
    state = bucket.state
    t_rev_ns = state.t_rev_s * 1e9
    counts, edges = np.histogram(dt_s * 1e9, bins=n_bins, range=(0.0, t_rev_ns))
    ax_prof.step(edges[:-1], counts, where="post", color="C0")
    ax_prof.set_xlabel("dt [ns]")
    ax_prof.set_ylabel("macroparticles / bin")
    ax_prof.set_title("line density", fontsize=9)
    if bucket.valid:
        tt, de = bucket.separatrix()
        half_height = max(float(de.max()), 1.0) * 1.1e-6
        span: tuple[tuple[float, float], tuple[float, float]] = (
            (0.0, t_rev_ns), (-half_height, half_height))
    else:
        span = ((0.0, t_rev_ns), (float(de_eV.min(initial=-1.0)) / 1e6,
                                  float(de_eV.max(initial=1.0)) / 1e6))
    if dt_s.size:
        ax_ps.hist2d(dt_s * 1e9, de_eV / 1e6, bins=(64, 48), range=span, cmap="Blues")
    if bucket.valid:
        ax_ps.plot(tt * 1e9, de / 1e6, color="C3", lw=1)
        ax_ps.plot(tt * 1e9, -de / 1e6, color="C3", lw=1)
    ax_ps.set_xlabel("dt [ns]")
    ax_ps.set_ylabel("dE [MeV]")
    ax_ps.set_title("phase space and bucket", fontsize=9)
    t = np.linspace(0.0, state.t_rev_s, 256)
    w = 2 * np.pi / state.t_rev_s
    ax_rf.plot(t * 1e9, state.v1_V * np.sin(w * t + state.phi1_rad) / 1e3, "C1:", label="V1")
    ax_rf.plot(t * 1e9, state.v2_V * np.sin(2 * w * t + state.phi2_rad) / 1e3, "C2:", label="V2")
    ax_rf.plot(t * 1e9, state.kick_eV(t) / 1e3, "k", label="total - dE_s")
    ax_rf.axhline(0.0, color="0.7", lw=0.5)
    ax_rf.set_xlabel("dt [ns]")
    ax_rf.set_ylabel("kV")
    ax_rf.legend(fontsize=7, loc="upper right")
    ax_rf.set_title(f"RF, phi2 = {state.phi2_rad:.2f} rad", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return image


def plot_profiles(profiles: np.ndarray, t_rev_s: np.ndarray, times_s: np.ndarray, path: str,
                  title: str = "") -> None:
    """Save a PNG of line-density profiles along the cycle.

    Args:
        profiles: shape (n_steps, n_bins), one profile per step over its revolution period.
        t_rev_s: shape (n_steps,), revolution period of each profile.
        times_s: shape (n_steps,), cycle time of each profile.
        path: output PNG path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    profiles = np.asarray(profiles, dtype=float)
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_img, ax_lines = fig.subplots(1, 2)
    n_bins = profiles.shape[1]
    phase = (np.arange(n_bins) + 0.5) / n_bins
    ax_img.imshow(profiles, aspect="auto", origin="lower", cmap="magma",
                  extent=(0.0, 1.0, times_s[0] * 1e3, times_s[-1] * 1e3))
    ax_img.set_xlabel("dt / T_rev")
    ax_img.set_ylabel("cycle time [ms]")
    ax_img.set_title("line density along the cycle", fontsize=9)
    for k in np.linspace(0, len(profiles) - 1, min(6, len(profiles))).astype(int):
        ax_lines.plot(phase, profiles[k], label=f"{times_s[k] * 1e3:.0f} ms")
    ax_lines.set_xlabel("dt / T_rev")
    ax_lines.set_ylabel("line density (1 = uniform over the period)")
    ax_lines.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    from physml_core.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_episode(profiles: np.ndarray, abs_phase_error_rad: np.ndarray, path: str,
                 title: str = "") -> None:
    """Save a PNG of one evaluated PSBPhaseCorrection-v0 episode: the observed line-density
    profiles step by step (image and a few curves) and |Phi_2 - Phi_opt| along the episode.

    Args:
        profiles: shape (n_steps + 1, n_bins), the observation profiles from reset on.
        abs_phase_error_rad: shape (n_steps + 1,), |phase error| after reset and each step.
        path: output PNG path (written atomically).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from physml_core.atomic import atomic_path

    profiles = np.asarray(profiles, dtype=float)
    err = np.asarray(abs_phase_error_rad, dtype=float)
    fig = Figure(figsize=(13, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_img, ax_lines, ax_err = fig.subplots(1, 3)
    n_steps = len(profiles) - 1
    ax_img.imshow(profiles, aspect="auto", origin="lower", cmap="magma",
                  extent=(0.0, 1.0, -0.5, n_steps + 0.5))
    ax_img.set_xlabel("dt / T_rev")
    ax_img.set_ylabel("step")
    ax_img.set_title("observed line density", fontsize=9)
    phase = (np.arange(profiles.shape[1]) + 0.5) / profiles.shape[1]
    for k in sorted({0, 1, 3, 10, n_steps} & set(range(n_steps + 1))):
        ax_lines.plot(phase, profiles[k], label=f"step {k}")
    ax_lines.set_xlabel("dt / T_rev")
    ax_lines.set_ylabel("line density (1 = uniform)")
    ax_lines.legend(fontsize=7)
    ax_err.plot(np.arange(n_steps + 1), err, marker=".")
    ax_err.axhline(0.2, color="grey", ls="--", lw=1, label="0.2 rad")
    ax_err.axvline(10, color="grey", ls=":", lw=1, label="step 10")
    ax_err.set_xlabel("step")
    ax_err.set_ylabel("|Phi_2 - Phi_opt| [rad]")
    ax_err.set_ylim(0, math.pi)
    ax_err.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
