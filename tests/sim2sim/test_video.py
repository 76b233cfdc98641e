"""The picks filmed side by side (MuJoCo's renderer, headless), and sim2sim without any OpenGL.

The run folder is :mod:`fake_runs`' (random actors), with a selection made so that the chosen
checkpoint, the mean's pick and the last one are three different checkpoints."""

import os

import numpy as np
import pytest
from fake_runs import make_run, write_selection

from postconv.cli import main
from postconv.tasks import STAND_TASK

ARGS = ["--worlds", "nominal", "--episodes", "2", "--seconds", "1", "--no-wandb"]


@pytest.fixture(params=[None, STAND_TASK], ids=["velocity", "stand"])
def three_picks(tmp_path, request):
    run = make_run(tmp_path, task=request.param)
    rng = np.random.default_rng(0)
    steady = 1.0 + 0.01 * rng.standard_normal(400)  # the best worst case
    risky = np.where(rng.random(400) < 0.2, -1.0, 2.0)  # the best mean, a bad tail
    low = 0.5 + 0.01 * rng.standard_normal((2, 400))
    write_selection(run, np.vstack([steady, risky, low]))
    return run


def _frames(path):
    import imageio.v2 as imageio

    with imageio.get_reader(path, "ffmpeg") as reader:
        return np.stack([np.asarray(f) for f in reader])


def test_the_video_shows_the_three_picks_side_by_side_in_the_same_episode(three_picks, capsys):
    assert main(["sim2sim", str(three_picks), *ARGS]) == 0
    said = " ".join(capsys.readouterr().out.split())
    video = three_picks / "postconv" / "sim2sim" / "video"
    if not (video / "picks.mp4").is_file():
        assert not os.environ.get("POSTCONV_REQUIRE_GL"), f"no video where CI installed OSMesa: {said}"
        pytest.skip(f"no OpenGL backend here: {said}")
    assert "model_10 (chosen), model_20 (mean's pick), model_40 (last)" in said
    frames = _frames(video / "picks.mp4")
    assert frames.shape[1:] == (240, 3 * 320, 3)
    assert len(frames) == 26  # 1 s at 25 frames/s, both ends
    scene = frames[:, 16:].astype(float)  # below the label bars
    assert (scene.reshape(len(frames), -1).std(axis=1) > 10).all()  # no blank frame
    panels = [scene[:, :, i * 320 : (i + 1) * 320] for i in range(3)]
    assert np.abs(panels[0][0] - panels[1][0]).mean() < 2  # the same start...
    for a, b in ((0, 1), (0, 2), (1, 2)):  # ...then each policy moves its own way
        assert np.abs(panels[a][-1] - panels[b][-1]).mean() > 2
    assert (video / "picks.png").stat().st_size > 1000
    section = (three_picks / "postconv" / "report" / "sections" / "sim2sim_video.html").read_text()
    assert "<video" in section
    assert "data:video/mp4;base64," in section


def test_without_any_opengl_sim2sim_says_so_in_one_line_and_finishes(three_picks, capsys, monkeypatch):
    # MuJoCo's own switch for "no OpenGL": it imports, but no renderer can be made (as on a machine
    # without EGL or OSMesa, where each backend the child tries fails alike)
    monkeypatch.setenv("MUJOCO_GL", "disable")
    assert main(["sim2sim", str(three_picks), *ARGS]) == 0
    said = capsys.readouterr().out
    lines = [line for line in said.splitlines() if line.startswith("no video")]
    assert len(lines) == 1
    assert "no OpenGL backend loaded" in " ".join(said.split())
    out = three_picks / "postconv" / "sim2sim"
    assert not (out / "video" / "picks.mp4").exists()
    assert (out / "outcomes.csv").is_file()
    assert (out / "agreement.json").is_file()
    assert not (three_picks / "postconv" / "report" / "sections" / "sim2sim_video.html").exists()
