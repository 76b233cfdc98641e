"""The scenario grammar (``none``, ``V@LOW-HIGH``, either with ``+dyn``) without a simulator."""

import re

import pytest

from postconv.evaluation.rollout import CheckpointRef, EvalJob, RolloutSpec
from postconv.tasks.scenarios import MILD_DYNAMICS, DynamicsDraw, parse_scenario, scenario_text


@pytest.mark.parametrize(
    ("text", "name", "dynamics"),
    [
        ("none", "no_push", None),
        ("0.5@1-3", "push_0.5_1-3s", None),
        ("none+dyn", "no_push_dyn", MILD_DYNAMICS),
        ("1@2-4+dyn", "push_1_2-4s_dyn", MILD_DYNAMICS),
    ],
)
def test_a_scenario_reads_back_as_the_text_it_was_written_from(text, name, dynamics):
    scenario = parse_scenario(text)
    assert scenario.name == name
    assert scenario.dynamics == dynamics
    assert scenario_text(scenario.record()) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.5@1-3+wind", "the only suffix is '+dyn'"),
        ("fast+dyn", "write 'none' or VELOCITY@LOW-HIGH"),
        ("0.5@3-1", "push interval must satisfy 0 < low <= high"),
        ("0@1-3+dyn", "push velocity must be a finite number > 0"),
    ],
)
def test_a_bad_scenario_is_named_with_the_fix(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_scenario(text)


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"strength": (1.0, 0.8)}, "dynamics strength must be a finite range low <= high"),
        ({"strength": (0.0, 1.0)}, "dynamics strength must stay > 0"),
        ({"foot_friction": (0.0, 1.0)}, "dynamics foot_friction must stay > 0"),
        ({"torso_mass_kg": (0.0, float("inf"))}, "dynamics torso_mass_kg must be a finite range"),
        ({"action_delay_share": 1.5}, "dynamics action_delay_share must be in [0, 1]"),
    ],
)
def test_bad_dynamics_ranges_are_refused(changed, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DynamicsDraw(**changed)


def test_nominal_scenarios_keep_the_sample_identity_they_had_before_dynamics_draws_existed():
    # a record without a "dynamics" key: sample folders made before +dyn are still reused
    assert "dynamics" not in parse_scenario("0.5@1-3").record()
    spec = RolloutSpec(task="PostConv-Velocity-Flat-G1", envs_per_checkpoint=2, steps=3, burn_in_steps=0)
    ref = CheckpointRef("/x/a.pt", "a", 0, "0" * 64)
    nominal = EvalJob(spec, (ref,), parse_scenario("0.5@1-3"), (0,), "/tmp/x", {})
    shifted = EvalJob(spec, (ref,), parse_scenario("0.5@1-3+dyn"), (0,), "/tmp/x", {})
    assert nominal.key(ref, 0) != shifted.key(ref, 0)
    assert nominal.folder(ref, 0) != shifted.folder(ref, 0)


def test_every_commands_help_renders_with_the_scenario_grammar():
    import argparse

    from postconv.cli.options import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in commands.items():
        text = sub.format_help()  # argparse's %-formatting of every help string
        if any("--scenarios" in a.option_strings for a in sub._actions):
            assert "+dyn" in text, name
