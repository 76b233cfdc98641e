"""Simulator work in processes of their own (Isaac Lab keeps one simulation per process)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROBE = Path(__file__).with_name("probe_env.py")


def run_probe(kind: str, num_envs: int, steps: int) -> dict:
    """Run probe_env.py in its own process (one simulation per process) and parse its JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(PROBE), kind, str(num_envs), str(steps)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if proc.returncode != 0:
        raise AssertionError(f"probe {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # MuJoCo-Warp and Newton print buffer overflows (contacts, constraints) from their kernels
    result["overflow_lines"] = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "overflow" in line.lower()
    ]
    return result


# a post-convergence stage small enough for the tests: 2 checkpoints x 2 envs x 2 scenarios
TINY_STAGE = (
    "--num_envs 4 --envs-per-checkpoint 2 --steps 12 --burn-in 4 --scenarios none 0.5@0.1-0.3 --n-boot 20"
)


def run_json_probe(script: str, *args: str) -> dict:
    """Run tests/sim/<script> in its own process and parse the JSON it prints after ``PROBE ``."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), *args],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line[len("PROBE ") :])


def mujoco_states(robot, snap: dict) -> np.ndarray:
    """MuJoCo states of Isaac Lab's root pose (xyzw), root link velocity (world) and joints."""
    from postconv.sim2sim.contract import quat_rotate_inverse

    pose, vel = np.array(snap["root_pose_xyzw"]), np.array(snap["root_link_vel_w"])
    m = robot.model
    states = np.zeros((len(pose), robot.nstate))
    qpos, qvel = states[:, 1 : 1 + m.nq], states[:, 1 + m.nq : 1 + m.nq + m.nv]
    qpos[:, 0:3] = pose[:, 0:3]
    qpos[:, 3], qpos[:, 4:7] = pose[:, 6], pose[:, 3:6]
    qpos[:, 7:] = np.array(snap["joint_pos"])[:, robot.to_mujoco]
    qvel[:, 0:3] = vel[:, 0:3]
    qvel[:, 3:6] = quat_rotate_inverse(qpos[:, 3:7], vel[:, 3:6])
    qvel[:, 6:] = np.array(snap["joint_vel"])[:, robot.to_mujoco]
    return states


def train(
    task: str, cwd: Path, iterations: int = 2, stage_args: str | None = None, overrides: tuple[str, ...] = ()
) -> Path:
    """Run `isaaclab train` on ``task`` (4 envs, 8 steps an iteration) and return its run folder.

    With ``stage_args`` the post-convergence stage runs when training ends, with those options;
    otherwise it is switched off. ``overrides``: more Hydra overrides (``env.x=y``).
    """
    cmd = [
        str(Path(sys.executable).with_name("isaaclab")), "train", "--task", task,
        "--num_envs", "4", "--max_iterations", str(iterations), "--device", "cpu",
        "agent.device=cpu", "agent.num_steps_per_env=8", "agent.save_interval=1", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if stage_args is None:
        env["POSTCONV_STAGE"] = "0"
    else:
        env["POSTCONV_STAGE_ARGS"] = stage_args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = [run for experiment in (cwd / "logs" / "rsl_rl").iterdir() for run in experiment.iterdir()]
    assert len(runs) == 1, runs
    (runs[0] / "train_output.txt").write_text(proc.stdout + proc.stderr)
    return runs[0]


def postconv(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """The `postconv` command in its own process (one simulation per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "postconv.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


# The stage on a copied trained run: 3 checkpoints (all: a 2-iteration run has no converged
# curve), 2 envs each, 2 scenarios
EVAL = ["--envs-per-checkpoint", "2", "--steps", "12", "--burn-in", "4", "--scenarios", "none", "0.5@0.1-0.3",
        "--all-checkpoints"]  # fmt: skip
# One env of 3 groups either way: the physics' last bits depend on the env's size (measured
# here: 2 vs 6 envs differ by ~1e-7 after a step), never on what the other groups hold.
GROUPED = ["--num_envs", "6", *EVAL]
ONE_BY_ONE = [*GROUPED, "--checkpoints-per-job", "1"]


def copy_run(trained_run: Path, dest: Path, duplicate_last: bool = True) -> Path:
    """The trained run without its stage outputs; model_5.pt = a byte copy of model_1.pt."""
    run = dest / trained_run.name
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("postconv"))
    if duplicate_last:
        shutil.copy(run / "model_1.pt", run / "model_5.pt")
    return run


def samples_of(run: Path) -> dict[tuple[str, ...], dict[str, np.ndarray]]:
    """Every sample folder's arrays, by (scenario, checkpoint, seed folder)."""
    from postconv.storage.sample_store import ARRAYS, samples_root

    root = samples_root(run)
    return {
        tuple(folder.relative_to(root).parts): {name: np.load(folder / f"{name}.npy") for name in ARRAYS}
        for folder in sorted(root.glob("*/*/seed_*"))
    }


def assert_same_samples(run: Path, reference: Path) -> None:
    ours, theirs = samples_of(run), samples_of(reference)
    assert ours.keys() == theirs.keys()
    for key, arrays in ours.items():
        for name, values in arrays.items():
            np.testing.assert_array_equal(values, theirs[key][name], err_msg=f"{key} {name}")


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def start_evaluation(run: Path, args: list[str]) -> subprocess.Popen:
    """`postconv evaluate RUN ARGS...` in the background, output captured."""
    cmd = [sys.executable, "-m", "postconv.cli", "evaluate", str(run), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finished_sets(run: Path) -> dict[Path, int]:
    """Complete sample folders of a run, with their meta.json's mtime (to tell if one is redone)."""
    from postconv.storage.sample_store import samples_root

    return {f.parent: f.stat().st_mtime_ns for f in samples_root(run).glob("*/*/seed_*/meta.json")}


def wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 600) -> None:
    """Poll ``ready()`` while the evaluation runs; fail if it ends or times out first."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, f"evaluation ended before {what}"
        assert time.time() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C the evaluation; it must stop with 130 and say how to resume. Returns its output."""
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output[-3000:]
    assert "run the same command again to resume" in output
    return output


def assert_resumes(run: Path, args: list[str], done: dict[Path, int], reference: Path) -> None:
    """The same command again reuses every finished set untouched and ends equal to ``reference``."""
    resumed = postconv("evaluate", str(run), *args)
    assert_ok(resumed)
    assert f"{len(done)} of 6 sample sets already on disk: reused" in resumed.stdout
    assert_untouched(done)
    assert_same_samples(run, reference)


def assert_untouched(done: dict[Path, int]) -> None:
    for folder, mtime in done.items():
        assert (folder / "meta.json").stat().st_mtime_ns == mtime, f"{folder} was recomputed"
