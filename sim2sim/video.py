"""Videos of the picks: the chosen checkpoint, the plain mean's pick and the last checkpoint
(and the worst case's pick where a ``--pick`` rule chose another one),
side by side in one shifted world under the same episode (common random numbers).

The physics runs here, in :class:`~postconv.sim2sim.batch.WorldBatch` (the same episodes as the
outcomes); the frames are drawn by MuJoCo's own renderer in a child process
(``python -m postconv.sim2sim.video``), so that an OpenGL backend that fails to load, or
crashes while loading, costs a line of output and never the sim-to-sim results. Headless
backends are tried in turn: ``MUJOCO_GL`` when set, else EGL (GPU machines), then OSMesa
(CPUs: ``apt-get install libosmesa6``). The video is encoded with imageio's ffmpeg.

Output, under ``<run>/postconv/sim2sim/video/``: ``picks.mp4`` (H.264, 25 frames/s), a
``picks.png`` poster frame (just after the first fall) and ``picks.json`` (the world, the
episode, who fell when).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from postconv.ranking.result import Pick
from postconv.sim2sim.batch import WorldBatch
from postconv.sim2sim.config import EpisodeSpec
from postconv.sim2sim.worlds import POLICY_DT, Command, parse_world, world_model

VIDEO_DIR = "video"
BACKENDS = ("egl", "osmesa")
"""Headless OpenGL backends tried in turn when ``MUJOCO_GL`` is not set."""
WIDTH, HEIGHT = 320, 240
"""One panel's size in pixels (multiples of 16, as H.264 wants)."""
FPS = 25
"""Frames per second: every second policy step (50 Hz)."""
CANDIDATE_EPISODES = 8
"""Episodes run for each pick; the one where the picks differ most is rendered."""
NO_GL = 3
"""The child's exit code when no OpenGL context could be made (any other failure is another error)."""
RENDER_TIMEOUT_S = 600
"""A child that renders longer than this is stopped (a hung GL driver must not hang the stage)."""


@dataclass(frozen=True)
class VideoResult:
    mp4: Path
    poster: Path
    world: str
    episode: int
    picks: list[Pick]
    fell_at: dict[str, float | None]
    """checkpoint -> seconds until it fell in the episode shown; None: it stood."""
    backend: str


def video_world(result, picks: list[Pick]) -> str:
    """The world to film: where the picks differ most.

    With margins (``--stress``): the kind whose margins among the picks spread widest (as a
    share of its searched range), at the middle of their margins, so that one pick tends to
    stand where another falls. Without: the fixed world whose survival rates among the picks
    spread widest."""
    from postconv.sim2sim.config import KINDS

    names = [p.name for p in picks]
    if result.margins is not None and result.margins.kinds:

        def spread(k) -> float:
            values = [k.margin[n] for n in names]
            return (max(values) - min(values)) / max(k.top - k.bottom, 1e-9)

        kind = max(result.margins.kinds.values(), key=spread)
        spec = KINDS[kind.kind]
        middle = spec.snap(float(np.median([kind.margin[n] for n in names])))
        return spec.shift(middle, result.margins.config.push)
    rates = {w: [float(np.mean(result.outcomes[w][n]["survived"])) for n in names] for w in result.worlds}
    return max(result.worlds, key=lambda w: max(rates[w]) - min(rates[w]))


def record(world_text: str, command: Command | None, actors: list, spec: EpisodeSpec, clip, pool) -> dict:
    """Run every pick on the same episodes of the world; keep the states of the episode where they differ most.

    Returns the ``(P, T + 1, nstate)`` states of that episode, its index and each pick's fall time."""
    from postconv.evaluation.rollout import GroupPolicy

    world = parse_world(world_text, command)
    robot = world_model(world)
    E, T, P = spec.episodes, spec.steps, len(actors)
    states = np.zeros((T + 1, P * E, robot.nstate))
    last = [0]

    def keep(t: int, s: np.ndarray) -> None:
        states[t] = s
        last[0] = t

    out = WorldBatch(robot, world, spec, pool).run(
        GroupPolicy(actors, E, "cpu"), P, clip=clip, on_states=keep
    )
    states[last[0] + 1 :] = states[last[0]]  # everyone fell: the rest stands still
    fall = out.time_to_fall.reshape(P, E)
    stood = out.survived.reshape(P, E)
    # the episode where the picks' times to fall differ most; ties: the earliest
    episode = int(np.argmax(fall.max(axis=0) - fall.min(axis=0)))
    rows = np.arange(P) * E + episode
    return {
        "states": states[:, rows].transpose(1, 0, 2),
        "episode": episode,
        "fell_at": [None if stood[p, episode] else float(fall[p, episode]) for p in range(P)],
    }


def make_video(
    out_dir: Path,
    world_text: str,
    command: Command | None,
    picks: list[Pick],
    actors: list,
    clip,
    seconds: float,
    seed: int,
    pool,
    console,
) -> VideoResult | None:
    """Film the picks (see the module docstring); None, with one line said, when no OpenGL backend
    loads or the video fails otherwise (the sim-to-sim results never depend on it)."""
    spec = EpisodeSpec(CANDIDATE_EPISODES, seconds, seed)
    recorded = record(world_text, command, actors, spec, clip, pool)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.npz"
        labels = [f"{p.name} ({', '.join(p.roles)})" for p in picks]
        np.savez(
            job,
            states=recorded["states"],
            fell_at=np.array([np.nan if f is None else f for f in recorded["fell_at"]]),
            labels=np.array(labels),
            world=np.array(world_text),  # the physical shifts are all the drawing needs
            out=np.array(str(out_dir)),
        )
        backend, why = _render_in_child(job)
    if backend is None:
        console.print(f"[yellow]no video[/]: {why}")
        return None
    result = VideoResult(
        mp4=out_dir / "picks.mp4",
        poster=out_dir / "picks.png",
        world=world_text,
        episode=recorded["episode"],
        picks=picks,
        fell_at=dict(zip([p.name for p in picks], recorded["fell_at"], strict=True)),
        backend=backend,
    )
    (out_dir / "picks.json").write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    console.print(f"video of {', '.join(labels)} in {world_text}, episode {result.episode}: {result.mp4}")
    return result


def _render_in_child(job: Path) -> tuple[str | None, str]:
    """(backend, "") after a child rendered ``job``; (None, why) when none could."""
    chosen = os.environ.get("MUJOCO_GL")
    tried = []
    for backend in (chosen,) if chosen else BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend}
        if backend in ("egl", "osmesa"):
            env["PYOPENGL_PLATFORM"] = backend
        try:
            done = subprocess.run(
                [sys.executable, "-m", "postconv.sim2sim.video", str(job)],
                env=env, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, f"rendering with {backend} took over {RENDER_TIMEOUT_S} s and was stopped"
        if done.returncode == 0:
            return backend, ""
        last = (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]
        if done.returncode != NO_GL:  # GL worked: another backend would fail alike
            return None, f"the video failed ({backend}: {last[:300]})"
        tried.append(f"{backend}: {last[:160]}")
    return None, (
        "no OpenGL backend loaded for MuJoCo's renderer (" + "; ".join(tried) + "). On a CPU machine: "
        "apt-get install libosmesa6 (then MUJOCO_GL=osmesa); on a GPU machine: the NVIDIA EGL driver (MUJOCO_GL=egl). "
        "The sim-to-sim results are complete without it."
    )


def _label(frame: np.ndarray, text: str, fell: bool) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, frame.shape[1], 16), fill=(180, 30, 30) if fell else (30, 30, 30))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return np.asarray(image)


def _render(job: Path) -> None:
    """The child's work: draw every panel's states, write the MP4, GIF and poster."""
    import imageio.v2 as imageio
    import mujoco

    data = np.load(job)
    model = world_model(parse_world(str(data["world"])), scenery=True).model
    model.vis.headlight.ambient, model.vis.headlight.diffuse = [0.45] * 3, [0.6] * 3
    try:
        renderer = mujoco.Renderer(model, HEIGHT, WIDTH)
    except Exception as err:  # the backend did not load: the parent tries the next one
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(NO_GL)
    d = mujoco.MjData(model)
    states, fell_at, labels = data["states"], data["fell_at"], [str(x) for x in data["labels"]]
    stride = round(1 / (FPS * POLICY_DT))
    frames = []
    for t in range(0, states.shape[1], stride):
        panels = []
        for p in range(states.shape[0]):
            mujoco.mj_setState(model, d, states[p, t], mujoco.mjtState.mjSTATE_FULLPHYSICS)
            mujoco.mj_forward(model, d)
            renderer.update_scene(d, camera="tracking")
            fell = bool(np.isfinite(fell_at[p]) and t * POLICY_DT >= fell_at[p])
            text = labels[p] + (f"  fell at {fell_at[p]:.1f} s" if fell else "")
            panels.append(_label(renderer.render(), text, fell))
        frames.append(np.concatenate(panels, axis=1))
    out = Path(str(data["out"]))
    imageio.mimwrite(out / "picks.mp4", frames, fps=FPS, codec="libx264", quality=7, macro_block_size=16)
    first_fall = np.nanmin(fell_at) if np.isfinite(fell_at).any() else None
    at = len(frames) // 2 if first_fall is None else min(len(frames) - 1, int((first_fall + 0.3) * FPS))
    imageio.imwrite(out / "picks.png", frames[at])


if __name__ == "__main__":
    try:
        import mujoco  # noqa: F401  (reads MUJOCO_GL: an unknown or missing backend fails here)
    except Exception as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(NO_GL)
    _render(Path(sys.argv[1]))
