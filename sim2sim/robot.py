"""The 29-DoF G1 in plain C MuJoCo, built like the Isaac Lab tasks build it.

The robot comes from the same MJCF the project's USD was converted from (mjlab 1.6.0's
``g1.xml`` and meshes, under ``postconv/tasks/assets/g1/mjcf``). What Isaac Lab adds on top
of the file is added here from the same constants (:mod:`postconv.tasks.g1`):

- one position servo per joint, ``tau = clip(kp (q* - q) - kd qdot, -effort, effort)``,
  with the 10 Hz / damping-ratio-2 gains, the reflected-inertia armature and the effort
  limits of the joint's motor group (Isaac Lab's implicit actuators);
- contacts between the robot and the ground only (the task turns self-collisions off);
- a ground plane whose friction governs every contact (it has priority), 1.0 like the
  task's terrain material; MuJoCo-Warp combines frictions by maximum, so the robot's own
  1.0 gives the same;
- the task's physics step (``sim.dt`` 0.005 s, implicit-fast integration, pyramidal cone).
  Newton subdivides that step in two and uses its own collision pipeline: these are
  differences between the simulators, which is what a sim-to-sim check is for.

Joint order: the policy reads and writes joints in the order Isaac Lab's articulation
reports them, :data:`postconv.tasks.g1.JOINT_NAMES` (measured: Newton keeps the file's
depth-first order). :class:`G1Model` maps by name, so a file or simulator that orders
them otherwise still gets each value to its joint; the contract tests compare both orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from postconv.tasks import g1
from postconv.tasks.g1 import DECIMATION, PHYSICS_DT  # noqa: F401  (the twin steps as the tasks do)

G1_MJCF = Path(g1.__file__).resolve().parent / "assets" / "g1" / "mjcf" / "g1.xml"
"""mjlab 1.6.0's 29-DoF G1 (Apache-2.0, see ``assets/g1/LICENSE-mjlab``)."""

GROUND_FRICTION = 1.0
"""The tasks' terrain material (static and dynamic friction 1.0)."""
FOOT_BODIES = ("left_ankle_roll_link", "right_ankle_roll_link")
"""The bodies that may touch the ground without it counting as a fall."""

# robot geoms collide with the ground (type 1 / affinity 2) and never with each other
_ROBOT_CONTYPE, _ROBOT_CONAFFINITY = 2, 1
_FLOOR_CONTYPE, _FLOOR_CONAFFINITY = 1, 2


@dataclass(frozen=True)
class JointParams:
    """Per-joint actuator facts, (29,) each, in MuJoCo's joint order."""

    armature: np.ndarray
    stiffness: np.ndarray
    damping: np.ndarray
    effort_limit: np.ndarray
    action_scale: np.ndarray
    default_pos: np.ndarray


def joint_params(names: list[str] | tuple[str, ...]) -> JointParams:
    """The actuator facts of ``names`` from :mod:`postconv.tasks.g1` (each joint in one group)."""
    rows = []
    for name in names:
        groups = [grp for grp in g1.JOINT_GROUPS.values() if any(re.fullmatch(p, name) for p in grp.joints)]
        if len(groups) != 1:
            raise ValueError(
                f"joint {name!r} is in {len(groups)} motor groups of postconv.tasks.g1; expected 1"
            )
        grp = groups[0]
        default = [v for p, v in g1.STANDING_POSE.items() if re.fullmatch(p, name)]
        rows.append(
            (
                grp.armature,
                grp.stiffness,
                grp.damping,
                grp.effort_limit,
                grp.action_scale,
                (default or [0.0])[0],
            )
        )
    cols = np.array(rows, dtype=np.float64).T
    return JointParams(*cols)


def g1_spec(mjcf: Path = G1_MJCF) -> mujoco.MjSpec:
    """The G1 with the tasks' actuators, collisions, ground and physics options, as an editable spec."""
    if not mjcf.is_file():
        raise FileNotFoundError(
            f"the G1 MJCF {mjcf} is missing; reinstall postconv (it ships in postconv/tasks/assets/g1/mjcf)"
        )
    spec = mujoco.MjSpec.from_file(str(mjcf))
    # the file's IMU sensors are not what the policy reads (it gets the base state), and its
    # accelerometer would cost an extra dynamics pass every physics step
    for sensor in list(spec.sensors):
        spec.delete(sensor)
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    spec.option.impratio = 1.0
    floor = spec.worldbody.add_geom()
    floor.name = "floor"
    floor.type = mujoco.mjtGeom.mjGEOM_PLANE
    floor.size = [0.0, 0.0, 0.05]
    floor.contype, floor.conaffinity = _FLOOR_CONTYPE, _FLOOR_CONAFFINITY
    floor.priority = 1
    floor.friction = [GROUND_FRICTION, 0.005, 0.0001]
    floor.rgba = [0.45, 0.5, 0.55, 1.0]
    for geom in spec.geoms:
        if geom.name != "floor" and (geom.contype or geom.conaffinity):
            geom.contype, geom.conaffinity = _ROBOT_CONTYPE, _ROBOT_CONAFFINITY
    names = [j.name for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_HINGE]
    params = joint_params(names)
    for i, name in enumerate(names):
        spec.joint(name).armature = params.armature[i]
        act = spec.add_actuator()
        act.name, act.target = name, name
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = params.stiffness[i]
        act.biasprm[:3] = [0.0, -params.stiffness[i], -params.damping[i]]
        act.forcelimited = True
        act.forcerange = [-params.effort_limit[i], params.effort_limit[i]]
    _add_ground_contact_sensors(spec)
    return spec


def _add_ground_contact_sensors(spec: mujoco.MjSpec) -> None:
    """One ``found`` contact sensor per colliding body against the floor (feet first)."""
    bodies = [b.name for b in spec.bodies if any(g.contype and g.name != "floor" for g in b.geoms)]
    bodies = sorted(bodies, key=lambda name: name not in FOOT_BODIES)
    for name in bodies:
        sensor = spec.add_sensor()
        sensor.name = f"ground_{name}"
        sensor.type = mujoco.mjtSensor.mjSENS_CONTACT
        sensor.objtype, sensor.objname = mujoco.mjtObj.mjOBJ_BODY, name
        sensor.reftype, sensor.refname = mujoco.mjtObj.mjOBJ_GEOM, "floor"
        sensor.intprm[0] = 1  # data = found (bit 0): how many contacts, capped at num
        sensor.intprm[1] = 0  # reduce: none
        sensor.intprm[2] = 1  # num: one slot


@dataclass(frozen=True)
class G1Model:
    """A compiled G1 world and what the policy contract needs to read and drive it."""

    model: mujoco.MjModel
    mujoco_joints: tuple[str, ...]
    """Hinge joints in MuJoCo's (qpos) order."""
    isaac_joints: tuple[str, ...]
    """The same joints in the policy's (Isaac Lab's) order."""
    to_isaac: np.ndarray
    """(29,) index: ``x_isaac = x_mujoco[to_isaac]``."""
    to_mujoco: np.ndarray
    """(29,) index: ``x_mujoco = x_isaac[to_mujoco]``."""
    params: JointParams
    """Actuator facts in MuJoCo's order."""
    foot_sensors: np.ndarray
    """Sensor-data indices of the feet's ground contacts."""
    body_sensors: np.ndarray
    """Sensor-data indices of every other colliding body's ground contact (a fall)."""

    @property
    def nstate(self) -> int:
        return mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_FULLPHYSICS)


def compile_g1(spec: mujoco.MjSpec) -> G1Model:
    """Compile a G1 spec from :func:`g1_spec` (possibly edited) into a :class:`G1Model`."""
    model = spec.compile()
    names = tuple(
        model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE
    )
    isaac = tuple(g1.JOINT_NAMES)
    if sorted(isaac) != sorted(names):
        raise ValueError(f"the MJCF's hinge joints {sorted(names)} are not the G1's {sorted(isaac)}")
    to_isaac = np.array([names.index(n) for n in isaac])
    feet, others = [], []
    for s in range(model.nsensor):
        name = model.sensor(s).name
        if name.startswith("ground_"):
            (feet if name[len("ground_") :] in FOOT_BODIES else others).append(int(model.sensor_adr[s]))
    return G1Model(
        model=model,
        mujoco_joints=names,
        isaac_joints=isaac,
        to_isaac=to_isaac,
        to_mujoco=np.argsort(to_isaac),
        params=joint_params(names),
        foot_sensors=np.array(feet),
        body_sensors=np.array(others),
    )


def build_g1() -> G1Model:
    """The nominal G1 world."""
    return compile_g1(g1_spec())
