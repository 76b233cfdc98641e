"""``+dyn`` scenarios: per-env dynamics draws reach the solver, are common to every group,
shift the samples, and are undone for the nominal scenarios (CPU, kit-less)."""

import json

import numpy as np
import pytest
from conftest import HAS_SIM
from probes import GROUPED, assert_ok, copy_run, postconv, run_json_probe, samples_of

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.storage.sample_store import ARRAYS, samples_root

pytestmark = pytest.mark.needs_sim


@pytest.fixture(scope="module", params=["flat", "stand"])
def probe(request):
    return run_json_probe("probe_dynamics.py", request.param)


def test_the_solver_holds_each_slots_draw_and_the_nominal_robot_again_after(probe):
    draws, nominal, shifted = probe["draws"], probe["nominal"], probe["shifted"]
    for name, values in draws.items():
        assert values[0] == values[2], f"{name}: slot 0 differs between groups"
        assert values[1] == values[3], f"{name}: slot 1 differs between groups"
        assert values[0] != values[1] or name == "action_delayed", f"{name}: both slots drew alike"
    for env in range(4):
        added = shifted["torso_mass"][env] - nominal["torso_mass"][env]
        assert added == pytest.approx(draws["torso_mass_kg"][env], rel=1e-5)
        np.testing.assert_allclose(
            np.array(shifted["gains"][env]) / np.array(nominal["gains"][env]),
            draws["strength"][env],
            rtol=1e-5,
        )  # the knee's stiffness and damping both
        contacts = shifted["contacts"][env]["contact_friction"]
        assert contacts, "the feet should touch the ground"
        np.testing.assert_allclose(contacts, draws["foot_friction"][env], rtol=1e-6)
    assert probe["restored"]["torso_mass"] == nominal["torso_mass"]
    assert probe["restored"]["gains"] == nominal["gains"]
    assert all(set(c["contact_friction"]) == {1.0} for c in probe["restored"]["contacts"]), (
        "the feet keep their own friction again"
    )


def test_dyn_samples_are_common_to_identical_checkpoints_and_leave_the_nominal_ones_unchanged(
    trained_run, one_by_one, tmp_path
):
    run = copy_run(trained_run, tmp_path)
    scenarios = GROUPED.index("--scenarios")
    args = [*GROUPED[: scenarios + 1], "0.5@0.1-0.3+dyn", "none", *GROUPED[scenarios + 3 :]]
    assert_ok(postconv("evaluate", str(run), *args))  # the draws first, the nominal robot after
    ours, reference = samples_of(run), samples_of(one_by_one)
    for key in [k for k in ours if k[0] == "no_push"]:
        for name in ARRAYS:
            np.testing.assert_array_equal(ours[key][name], reference[key][name], err_msg=f"{key} {name}")
    dyn = "push_0.5_0.1-0.3s_dyn"
    for name in ARRAYS:  # model_5 is a byte copy of model_1: the same robots in the same slots
        np.testing.assert_array_equal(
            ours[(dyn, "model_5", "seed_0")][name], ours[(dyn, "model_1", "seed_0")][name]
        )
    nominal = reference[("push_0.5_0.1-0.3s", "model_1", "seed_0")]["psi"]
    assert not np.array_equal(ours[(dyn, "model_1", "seed_0")]["psi"], nominal), "the draws changed nothing"
    meta = json.loads((samples_root(run) / dyn / "model_1" / "seed_0" / "meta.json").read_text())
    assert meta["scenario"]["dynamics"]["strength"] == [0.8, 1.0]
    assert len(meta["dynamics_draws"]["strength"]) == 2  # one per env slot
    assert all(0.8 <= s <= 1.0 for s in meta["dynamics_draws"]["strength"])
