"""The CaloGAN calorimeter geometry (Paganini, de Oliveira, Nachman, PRD 97 014021, 2018).

A cube of 80 sampling layers of 2 mm lead + 4 mm liquid argon (6 mm pitch) from z = -240 mm to
z = +240 mm, read out in three longitudinal layers with different cell sizes.  Energy is counted
in lead and argon alike, so there is no sampling fraction to undo.  The particle enters at
x = y = 0 along z.

Array conventions follow the public CaloGAN HDF5 files: ``layer_i`` has shape (N, rows, cols)
where rows run along x and columns along y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LAYERS",
    "LAYER_NAMES",
    "N_CELLS",
    "X0_EFF_MM",
    "LayerGeometry",
    "cell_centres_mm",
]

#: Effective radiation length of the Pb/LAr mix in mm (reference facts: about 1.56 cm).
X0_EFF_MM = 15.6
#: Front and back faces of the calorimeter along z in mm.
Z_FRONT_MM = -240.0
Z_BACK_MM = 240.0
#: Half width of the read-out window in mm (energy outside it goes to ``overflow``).
HALF_WIDTH_MM = 240.0


@dataclass(frozen=True)
class LayerGeometry:
    """One read-out layer: cell grid and longitudinal extent.

    Attributes: ``name`` (HDF5 key), ``shape`` (rows along x, columns along y), cell size in mm
    along x and y, and the z range in mm.
    """

    name: str
    shape: tuple[int, int]
    cell_x_mm: float
    cell_y_mm: float
    z_start_mm: float
    z_stop_mm: float

    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def x_edges_mm(self) -> np.ndarray:
        """Cell edges along x, shape (rows + 1,)."""
        return np.linspace(-HALF_WIDTH_MM, HALF_WIDTH_MM, self.shape[0] + 1)

    @property
    def y_edges_mm(self) -> np.ndarray:
        """Cell edges along y, shape (cols + 1,)."""
        return np.linspace(-HALF_WIDTH_MM, HALF_WIDTH_MM, self.shape[1] + 1)

    @property
    def depth_x0(self) -> tuple[float, float]:
        """Start and stop of the layer in radiation lengths from the front face."""
        return ((self.z_start_mm - Z_FRONT_MM) / X0_EFF_MM, (self.z_stop_mm - Z_FRONT_MM) / X0_EFF_MM)


LAYERS: tuple[LayerGeometry, ...] = (
    LayerGeometry("layer_0", (3, 96), 160.0, 5.0, -240.0, -150.0),
    LayerGeometry("layer_1", (12, 12), 40.0, 40.0, -150.0, 197.0),
    LayerGeometry("layer_2", (12, 6), 40.0, 80.0, 197.0, 240.0),
)
LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)
#: Total number of cells of the three layers (288 + 144 + 72).
N_CELLS = sum(layer.n_cells for layer in LAYERS)


def cell_centres_mm(layer: LayerGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates (x of each row, y of each column) in mm."""
    xe, ye = layer.x_edges_mm, layer.y_edges_mm
    return 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])
