"""A flat ground that needs no asset server.

Isaac Lab spawns its flat ground from a USD on its remote asset server, and its terrain
config has no field for another path. :class:`LocalPlaneTerrainImporter` spawns the same
kind of ground plane (infinite collision plane, the terrain's physics material) from
``assets/ground_plane.usda`` in this package.
"""

from __future__ import annotations

from pathlib import Path

import isaaclab.sim as sim_utils
from isaaclab.terrains import TerrainImporter, TerrainImporterCfg

GROUND_PLANE_USD = Path(__file__).resolve().parent / "assets" / "ground_plane.usda"


class LocalPlaneTerrainImporter(TerrainImporter):
    """Isaac Lab's terrain importer with the plane read from this package."""

    def import_ground_plane(self, name: str, size: tuple[float, float] | None = None):
        prim_path = f"{self.cfg.prim_path}/{name}"
        if prim_path in self.terrain_prim_paths:
            raise ValueError(f"a terrain named {name!r} already exists: {', '.join(self.terrain_names)}")
        self.terrain_prim_paths.append(prim_path)
        cfg = sim_utils.GroundPlaneCfg(
            usd_path=str(GROUND_PLANE_USD),
            physics_material=self.cfg.physics_material,
            size=size if size is not None else self._compute_ground_plane_size(),
        )
        cfg.func(prim_path, cfg)


def local_plane_terrain(base: TerrainImporterCfg) -> TerrainImporterCfg:
    """``base`` (keeping its prim path and physics material) as a flat plane from this package."""
    base.class_type = LocalPlaneTerrainImporter
    base.terrain_type = "plane"
    base.terrain_generator = None
    base.visual_material = None
    base.max_init_terrain_level = None
    return base
