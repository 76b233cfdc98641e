"""Regenerate the 29-DoF Unitree G1 USD from the MJCF and meshes in the mjlab 1.6.0 wheel.

    .venv/bin/python -m postconv.tasks.assets.build_g1            # writes tasks/assets/g1/g1_29dof.usd

The result is committed (with the meshes' license notice), so users never run this; it is
here so the asset can be rebuilt and audited. Steps:

1. ``pip download --no-deps mjlab==1.6.0`` and unpack ``asset_zoo/robots/unitree_g1/xmls``.
2. Convert the MJCF to USD with mujoco-usd-converter, in a virtual environment of its own
   (it pins a newer mujoco than Newton's).
3. Flatten: the converter nests each link under its parent link, but Isaac Lab addresses
   bodies as direct children of the robot prim (contact sensors match
   ``{ENV_REGEX_NS}/Robot/[^/]*``). Every rigid body is moved to the top level with its
   world pose kept, and every relationship that named a moved prim (joint bodies, ...) is
   retargeted. The stage is then written as one self-contained file.

Needs only the package registries. Takes about a minute, most of it the converter's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MJLAB_VERSION = "1.6.0"
CONVERTER_VERSION = "0.8.0"
G1_XML_DIR = "mjlab/asset_zoo/robots/unitree_g1/xmls"
ASSET_DIR = Path(__file__).resolve().parent / "g1"
USD_NAME = "g1_29dof.usd"


@dataclass(frozen=True)
class FlattenReport:
    """What :func:`flatten_bodies` did, for the build log and the tests."""

    bodies: int
    joints: int
    moved: int
    max_pose_error_m: float


def flatten_bodies(src: Path, dst: Path) -> FlattenReport:
    """Write ``src`` as one USD file in which every rigid body is a child of the default prim.

    World poses are kept: a moved body's new local transform is its old world transform
    expressed in the default prim's frame. Joints keep their local frames, which are
    relative to their bodies and so unchanged.
    """
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.Open(str(src))
    root = stage.GetDefaultPrim().GetPath()
    layer = stage.Flatten()  # one anonymous layer: payloads and references resolved
    flat = Usd.Stage.Open(layer)
    xforms = UsdGeom.XformCache()
    root_inverse = xforms.GetLocalToWorldTransform(flat.GetPrimAtPath(root)).GetInverse()
    bodies = [p for p in flat.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)]
    world = {p.GetPath(): xforms.GetLocalToWorldTransform(p) for p in bodies}
    order = [p.GetName() for p in bodies]

    moved: dict[Sdf.Path, Sdf.Path] = {}
    # Deepest first, so a body leaves its parent body before the parent itself moves.
    for prim in sorted(bodies, key=lambda p: -p.GetPath().pathElementCount):
        old = prim.GetPath()
        new = root.AppendChild(old.name)
        if old == new:
            continue
        if layer.GetPrimAtPath(new):
            raise RuntimeError(f"two bodies are named {old.name!r}; cannot flatten {src}")
        edit = Sdf.BatchNamespaceEdit()
        edit.Add(old, new)
        if not layer.Apply(edit):
            raise RuntimeError(f"could not move {old} to {new}")
        moved[old] = new
        _set_pose(layer.GetPrimAtPath(new), Gf.Transform(world[old] * root_inverse), Sdf, Gf)

    def retarget(path: Sdf.Path) -> Sdf.Path:
        for old in sorted(moved, key=lambda p: -p.pathElementCount):
            if path.HasPrefix(old):
                return path.ReplacePrefix(old, moved[old])
        return path

    def visit(path: Sdf.Path) -> None:
        spec = layer.GetObjectAtPath(path)
        if isinstance(spec, Sdf.RelationshipSpec):
            targets = spec.targetPathList
            for kind in ("explicitItems", "prependedItems", "appendedItems"):
                items = list(getattr(targets, kind))
                if items:
                    setattr(targets, kind, [retarget(t) for t in items])

    layer.Traverse(Sdf.Path.absoluteRootPath, visit)
    root_spec = layer.GetPrimAtPath(root)
    rest = [name for name in root_spec.nameChildren.keys() if name not in order]  # noqa: SIM118 (a pxr view)
    root_spec.nameChildrenOrder = order + rest  # pelvis first, as in the MJCF
    dst.parent.mkdir(parents=True, exist_ok=True)
    layer.Export(str(dst))

    out = Usd.Stage.Open(str(dst))
    check = UsdGeom.XformCache()
    error = max(
        (
            (
                check.GetLocalToWorldTransform(out.GetPrimAtPath(new)).ExtractTranslation()
                - world[old].ExtractTranslation()
            ).GetLength()
            for old, new in moved.items()
        ),
        default=0.0,
    )
    return FlattenReport(
        bodies=sum(p.HasAPI(UsdPhysics.RigidBodyAPI) for p in out.Traverse()),
        joints=sum(p.IsA(UsdPhysics.RevoluteJoint) for p in out.Traverse()),
        moved=len(moved),
        max_pose_error_m=float(error),
    )


def _set_pose(spec, pose, Sdf, Gf) -> None:
    """Author translate / orient / scale ops holding ``pose`` on a prim spec."""
    values = [
        ("xformOp:translate", Gf.Vec3d(pose.GetTranslation()), Sdf.ValueTypeNames.Double3),
        ("xformOp:orient", Gf.Quatf(pose.GetRotation().GetQuat()), Sdf.ValueTypeNames.Quatf),
        ("xformOp:scale", Gf.Vec3f(1.0, 1.0, 1.0), Sdf.ValueTypeNames.Float3),
    ]
    for name, value, kind in values:
        attr = spec.attributes.get(name) or Sdf.AttributeSpec(spec, name, kind)
        attr.default = value
    order = spec.attributes.get("xformOpOrder") or Sdf.AttributeSpec(
        spec, "xformOpOrder", Sdf.ValueTypeNames.TokenArray, variability=Sdf.VariabilityUniform
    )
    order.default = [name for name, _, _ in values]


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def build(out_dir: Path, work: Path) -> FlattenReport:
    """The whole pipeline: download, convert in a venv of its own, flatten, write license notice."""
    wheel_dir = work / "wheel"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            f"mjlab=={MJLAB_VERSION}",
            "-d",
            str(wheel_dir),
        ]
    )
    wheel = next(wheel_dir.glob("mjlab-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        members = [m for m in z.namelist() if m.startswith(G1_XML_DIR) or "/licenses/" in m]
        z.extractall(work / "mjlab", members)
    venv = work / "converter-venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "--quiet", f"mujoco-usd-converter=={CONVERTER_VERSION}"])
    converted = work / "usd"
    _run(
        [
            str(venv / "bin" / "mujoco_usd_converter"),
            "--no-physics-scene",
            str(work / "mjlab" / G1_XML_DIR / "g1.xml"),
            str(converted),
        ]
    )
    src = next(converted.glob("*.usda"))
    report = flatten_bodies(src, out_dir / USD_NAME)
    license_file = next((work / "mjlab").glob("mjlab-*.dist-info/licenses/LICENSE"))
    (out_dir / "LICENSE-mjlab").write_text(license_file.read_text())
    digest = hashlib.sha256((out_dir / USD_NAME).read_bytes()).hexdigest()
    print(f"wrote {out_dir / USD_NAME} (sha256 {digest[:16]}...): {report}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSET_DIR, help="folder for g1_29dof.usd and its license")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="postconv-g1-") as tmp:
        report = build(args.out, Path(tmp))
    if report.max_pose_error_m > 1e-5:
        print(f"body poses moved by up to {report.max_pose_error_m:.2e} m while flattening", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
