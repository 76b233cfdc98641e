"""What the robot side needs to run an exported policy: ``<name>_policy.json`` beside its files.

The TorchScript and ONNX files map raw observations to action means; to drive a G1 with them
one also needs the observation's terms in order, the joint order, how an action becomes a
joint target (defaults, scales, clipping), the PD gains the policy was trained with and the
control period. All of it is read from the run's ``params/env.yaml`` and ``agent.yaml`` (what
the training actually ran), and checked against the actor's sizes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from postconv.storage.sample_store import atomic_write_text
from postconv.tasks import g1

CARD_VERSION = 1

_OBS_SETTINGS = frozenset(
    {"concatenate_terms", "concatenate_dim", "enable_corruption", "history_length", "flatten_history_dim",
     "history_order"}
)  # fmt: skip
"""Keys of an observation group that configure it rather than name a term."""

_OBS_TERMS: dict[str, tuple[int | str, str]] = {
    "base_lin_vel": (3, "pelvis centre-of-mass linear velocity in the pelvis frame (m/s)"),
    "base_ang_vel": (3, "pelvis angular velocity in the pelvis frame (rad/s)"),
    "projected_gravity": (3, "unit gravity direction in the pelvis frame"),
    "generated_commands": (3, "the command (vx, vy in m/s, wz in rad/s) in the heading frame"),
    "joint_pos_rel": ("joints", "joint positions minus their defaults (rad), in the joint order"),
    "joint_vel_rel": ("joints", "joint velocities (rad/s), in the joint order"),
    "last_action": ("actions", "the previous action the policy returned, after clipping"),
}
"""Isaac Lab observation functions the G1 tasks use: their size and meaning."""


def policy_card(run_dir: Path, task: str | None, agent_cfg: dict, obs_dim: int, act_dim: int) -> dict:
    """The policy's interface as the training ran it (see the module docstring).

    ``obs_dim`` and ``act_dim`` are the actor's; a card whose terms or joints do not add up to
    them says so in ``checks`` instead of passing for complete.
    """
    from postconv.storage.checkpoints import read_params

    env = read_params(run_dir / "params" / "env.yaml")
    joints = list(g1.JOINT_NAMES) if task and task.startswith("PostConv-") else None
    robot = env.get("scene", {}).get("robot", {})
    clip = agent_cfg.get("clip_actions")
    terms = [a for a in (env.get("actions") or {}).values() if isinstance(a, dict)]
    action = terms[0] if len(terms) == 1 else {}
    card = {
        "card_version": CARD_VERSION,
        "task": task,
        "observation": _observation(env, len(joints) if joints else None, act_dim),
        "action": {
            "size": act_dim,
            "clip": None if clip is None else [-float(clip), float(clip)],
            "target": "joint position target q* = offset + scale * clip(a), per joint in the joint order, "
            "held for the control period and tracked by the PD gains below",
            "term": str(action.get("class_type", "")).rpartition(":")[2] or None,
            "term_clip": action.get("clip"),
        },
        "joints": _joints(robot, action, joints),
        "control": _control(env),
    }
    card["checks"] = _checks(card, obs_dim, act_dim)
    return card


def _observation(env: dict, n_joints: int | None, act_dim: int) -> dict:
    group = env.get("observations", {}).get("policy") or {}
    terms = []
    for name, term in group.items():
        if name in _OBS_SETTINGS or not isinstance(term, dict):
            continue  # a setting, or a term switched off (null)
        func = str(term.get("func", "")).rpartition(":")[2]
        size, meaning = _OBS_TERMS.get(
            func, (None, f"{func}: not one the G1 tasks use; see the task's config")
        )
        if size == "joints":
            size = n_joints
        elif size == "actions":
            size = act_dim
        history = term.get("history_length") or group.get("history_length") or 0
        if isinstance(size, int) and history:
            size *= history  # that many steps of the term, oldest first
        noise = dict(term.get("noise") or {})
        if noise:
            noise["func"] = str(noise.get("func", "")).rpartition(":")[2]  # e.g. uniform_noise
        terms.append({
            "name": name, "size": size, "meaning": meaning, "scale": term.get("scale"), "clip": term.get("clip"),
            "history": history,
            "training_noise": noise or None,
        })  # fmt: skip
    return {
        "terms": terms,
        "normalized_inside": True,
        "note": "concatenated in this order; scale and clip apply as given (null: none); the training's "
        "uniform noise is not to be added on the robot; the exported files normalize inside",
    }


def _joints(robot: dict, action: dict, names: list[str] | None) -> list[dict] | None:
    if names is None or not action:
        return None
    scale = action.get("scale", 1.0)
    defaults = robot.get("init_state", {}).get("joint_pos") or {}
    by_default = action.get("use_default_offset", False)
    gains = {"stiffness": {}, "damping": {}}
    for actuator in (robot.get("actuators") or {}).values():
        for key in gains:
            value = actuator.get(key)
            for pattern in actuator.get("joint_names_expr") or []:
                gains[key][pattern] = value
    return [
        {"name": n, "default": _match(defaults, n, 0.0), "scale": _match(scale, n, None),
         "offset": _match(defaults, n, 0.0) if by_default else _match(action.get("offset", 0.0), n, 0.0),
         "stiffness": _match(gains["stiffness"], n, None), "damping": _match(gains["damping"], n, None)}
        for n in names
    ]  # fmt: skip


def _match(values, joint: str, otherwise):
    """The value an Isaac Lab ``{regex: value}`` config (or one plain value) gives ``joint``."""
    if not isinstance(values, dict):
        return otherwise if values is None else values
    for pattern, value in values.items():
        if re.fullmatch(pattern, joint):
            return _match(value, joint, otherwise) if isinstance(value, dict) else value
    return otherwise


def _control(env: dict) -> dict:
    dt, decimation = env.get("sim", {}).get("dt"), env.get("decimation")
    if not (dt and decimation):
        return {"period_s": None}
    period = float(dt) * int(decimation)
    return {
        "period_s": period,
        "rate_hz": round(1.0 / period, 6),
        "physics_dt_s": float(dt),
        "decimation": decimation,
    }


def _checks(card: dict, obs_dim: int, act_dim: int) -> dict:
    """Whether the card accounts for every input and output of the actor."""
    sizes = [t["size"] for t in card["observation"]["terms"]]
    read = sum(sizes) if all(isinstance(s, int) for s in sizes) else None
    joints = card["joints"]
    return {
        "observation": "ok" if read == obs_dim else f"the terms read give {read}, the actor takes {obs_dim}",
        "action_term": "ok"
        if card["action"]["term"] == "JointPositionAction" and card["action"]["term_clip"] is None
        else f"{card['action']['term']} (clip {card['action']['term_clip']}): the target formula above "
        "may not hold; see the task's config",
        "joints": "ok"
        if joints and len(joints) == act_dim and all(j["scale"] is not None for j in joints)
        else f"the joints could not be read for all {act_dim} actions; see the task's config",
    }


def write_policy_card(path: Path, card: dict, identity: dict) -> Path:
    """``card`` with what it belongs to (``identity``: checkpoint, files, why chosen) as JSON."""
    return atomic_write_text(path, json.dumps({**identity, **card}, indent=2) + "\n")
