"""Every bad option of ``run``, ``evaluate`` and ``train`` fails before training or any rollout,
with a message that names the option and what is allowed, and exit code 2 (no traceback).

``postconv train`` would start ``isaaclab train`` in a child process: here that launch is
replaced by a function that fails the test, so a bad option that got through would show.
"""

import json
import re

import pytest

from postconv.cli import commands as cli
from postconv.cli import options

BAD = [
    (["--k", "-1"], "--k: radii must be finite numbers >= 0"),
    (["--k", "1", "nan"], "--k: radii must be finite numbers >= 0"),
    (["--k", "2", "2", "4"], "--k: give each radius once"),
    (["--k", "4"], "--primary-k 2 is not in the k sweep [4.0]"),
    (["--n-boot", "1"], "--n-boot must be 0 (no intervals) or an integer >= 2"),
    (["--n-boot", "-5"], "--n-boot must be 0 (no intervals) or an integer >= 2"),
    (["--level", "1.5"], "--level is the intervals' coverage, in (0, 1)"),
    (["--pick-p", "0"], "--pick-p is a share of bootstrap replicates, in (0, 1]"),
    (["--psi", "feet_slide=nan"], "--psi feet_slide=nan: write TERM=WEIGHT with a finite weight"),
    (["--psi", "feet_slide=x"], "--psi 'feet_slide=x': write TERM=WEIGHT"),
    (["--scenarios", "nan@1-3"], "push velocity must be a finite number > 0"),
    (["--scenarios", "inf@1-3"], "push velocity must be a finite number > 0"),
    (["--scenarios", "0.5@3-1"], "push interval must satisfy 0 < low <= high < inf"),
    (["--scenarios", "0.5@1-inf"], "push interval must satisfy 0 < low <= high < inf"),
    (["--envs-per-checkpoint", "0"], "--envs-per-checkpoint must be an integer >= 1; got 0"),
    (
        ["--num_envs", "100", "--envs-per-checkpoint", "16"],
        "num_envs (100) is not a multiple of envs_per_checkpoint",
    ),
    (["--steps", "0"], "--steps must be an integer >= 1; got 0"),
    (["--burn-in", "-1"], "--burn-in must be an integer >= 0; got -1"),
    (["--every", "0"], "--every must be an integer >= 1; got 0"),
    (["--device", "gpu"], "--device 'gpu': use cpu, cuda or cuda:<index>"),
    (["--checkpoints-per-job", "0"], "--checkpoints-per-job must be an integer >= 1; got 0"),
]
SELECTION_ONLY = {"--k", "--n-boot", "--level", "--psi", "--pick", "--pick-p"}
"""``evaluate`` has no selection options: argparse refuses them itself."""


def _fail_if_training_starts(*args, **kwargs):
    raise AssertionError(f"isaaclab train was started before the options were checked: {args}")


def _main(argv, capsys) -> tuple[int, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, " ".join((out.out + out.err).split())


CASES = [
    pytest.param(command, options, message, id=f"{command} {' '.join(options)}")
    for command in ("run", "evaluate", "train")
    for options, message in BAD
    if not (command == "evaluate" and options[0] in SELECTION_ONLY)
]


@pytest.mark.parametrize(("command", "options", "message"), CASES)
def test_a_bad_option_fails_before_any_work_and_names_itself(
    command, options, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(cli.subprocess, "run", _fail_if_training_starts)
    if command == "train":  # the evaluation's sizes take an eval- prefix there
        sizes = {"--num_envs", "--envs-per-checkpoint", "--steps", "--burn-in", "--checkpoints-per-job"}
        options = [f"--eval-{o[2:]}" if o in sizes else o for o in options]
        argv = ["train", "--task", "PostConv-Stand-G1", "--device", "cpu", *options]
    else:
        argv = [command, str(tmp_path / "never-touched"), *options]
    rc, printed = _main(argv, capsys)
    assert rc == 2
    assert message in printed
    assert "Traceback" not in printed
    assert not (tmp_path / "never-touched").exists()


def test_a_psi_term_the_task_lacks_is_named_before_any_rollout(tmp_path, capsys):
    pytest.importorskip("isaaclab", reason="the task's reward terms come from its Isaac Lab config")
    (tmp_path / "model_0.pt").write_bytes(b"")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "agent.yaml").write_text("seed: 0\n")
    (tmp_path / "run.json").write_text(json.dumps({"task": "PostConv-Stand-G1"}))
    rc, printed = _main(["run", str(tmp_path), "--psi", "alive=1", "bogus=1"], capsys)
    assert rc == 2
    assert (
        "--psi: PostConv-Stand-G1 has no reward terms ['bogus']; its terms are track_lin_vel_xy_exp"
        in printed
    )
    assert not (tmp_path / "postconv").exists()


def test_train_refuses_a_task_the_stage_cannot_evaluate_before_training(capsys, monkeypatch):
    monkeypatch.setattr(cli.subprocess, "run", _fail_if_training_starts)
    rc, printed = _main(["train", "--task", "Isaac-Velocity-Flat-Anymal-D-v0"], capsys)
    assert rc == 2
    assert "task 'Isaac-Velocity-Flat-Anymal-D-v0': the stage evaluates PostConv-" in printed
    assert "nothing was trained" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "-1"], "--k: radii must be finite numbers >= 0"),
        (["--bogus"], "stage options ['--bogus']: postconv: error: unrecognized arguments: --bogus"),
        (["--num_envs", "ten"], "argument --num_envs: invalid int value: 'ten'"),
    ],
)
def test_the_hooks_stage_args_are_parsed_as_postconv_run_would(extra, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        options.parse_stage_args(extra)


def test_good_stage_args_give_the_stage_config_the_hook_will_run():
    config = options.parse_stage_args(
        [
            "--num_envs",
            "32",
            "--envs-per-checkpoint",
            "8",
            "--k",
            "2",
            "4",
            "--pick",
            "evidence",
            "--pick-p",
            "0.8",
        ]
    )
    assert (config.num_envs, config.envs_per_checkpoint, config.selection.k) == (32, 8, (2.0, 4.0))
    assert (config.selection.pick, config.selection.pick_p) == ("evidence", 0.8)


def test_help_ends_each_option_with_its_default_and_leaves_switches_alone():
    from postconv.cli.options import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    text = " ".join(commands["run"].format_help().split())
    for said in ("(default: evidence)", "(default: 1.0 2.0 4.0 6.0)", "(default: none 0.5@1-3 1@2-4)",
                 "(default: 0)", "(default: 200)"):  # fmt: skip
        assert said in text
    for name, command in commands.items():  # every subcommand formats, no switch shows True/False
        shown = command.format_help()
        assert "(default: True)" not in shown, name
        assert "(default: False)" not in shown, name
