"""The post-convergence stage on real runs: automatic after training, common random numbers,
grouped = one by one, resume after an interrupt, bad checkpoints skipped (CPU, kit-less)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HAS_SIM
from probes import (
    GROUPED,
    ONE_BY_ONE,
    assert_ok,
    assert_resumes,
    assert_same_samples,
    copy_run,
    finished_sets,
    interrupt,
    postconv,
    samples_of,
    start_evaluation,
    wait_until,
)

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.selection import worst_case
from postconv.storage.sample_store import ARRAYS, find_samples, samples_root, to_sample_set

pytestmark = pytest.mark.needs_sim


def test_training_ends_with_the_stage_whose_numbers_match_the_selection_module(trained_run):
    out = trained_run / "postconv"
    log = (trained_run / "train_output.txt").read_text()
    assert "post-convergence stage starts at exit" in log
    result = json.loads((out / "selection.json").read_text())
    assert result["scenarios"] == ["no_push", "push_0.5_0.1-0.3s"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    env = evaluation["env"]  # the sizes the stage chose, as run
    assert env["num_envs"] == env["envs_per_checkpoint"] * env["groups_in_env"]
    assert 1 <= env["checkpoints_per_job"] <= env["groups_in_env"]
    assert env["envs_per_checkpoint"] == 2
    assert env["device"] == "cpu"
    index = find_samples(trained_run, {(sc, c, seed): key for sc, c, seed, key in evaluation["sample_sets"]})
    samples, left_out = to_sample_set(index, unit="episode")  # the stage's default
    assert left_out == {}
    assert samples.psi.shape == (2, 2 * 2)  # checkpoints x (scenarios x envs): one sample per episode
    ks = result["config"]["k"]
    direct = worst_case(samples.psi, k=ks, divergence="kl")
    by_name = {c["name"]: c for c in result["checkpoints"]}
    for i, name in enumerate(samples.names):
        np.testing.assert_allclose(by_name[name]["worst_case"], direct.value[i], rtol=1e-6, atol=1e-9)
        assert by_name[name]["mean"] == pytest.approx(float(direct.mean[i]), rel=1e-6)
    assert (out / "selection.csv").read_text().startswith("checkpoint,mean,mean_rank")
    assert {p.name for p in (out / "by_scenario").iterdir()} == {
        "no_push.json", "no_push.csv", "push_0.5_0.1-0.3s.json", "push_0.5_0.1-0.3s.csv",
    }  # fmt: skip
    meta = json.loads(next(samples_root(trained_run).glob("*/model_1/seed_0/meta.json")).read_text())
    assert meta["task"] == "PostConv-Velocity-Flat-G1"
    assert len(meta["checkpoint"]["sha256"]) == 64
    assert meta["reward_terms"][0] == "track_linear_velocity"
    assert len(meta["age_at_start"]) == 2  # per env: the burn-in (4), less if it reset during it
    assert all(0 <= age <= 4 for age in meta["age_at_start"])
    assert meta["identity"]["env_config"]
    assert meta["env_config"]["rewards"]


def test_stored_terms_sum_to_the_task_reward(one_by_one):
    for arrays in samples_of(one_by_one).values():
        np.testing.assert_allclose(arrays["terms"].sum(-1), arrays["psi"], rtol=1e-4, atol=1e-6)


def test_identical_checkpoints_get_identical_samples_and_groups_equal_one_by_one(
    trained_run, one_by_one, tmp_path
):
    run = copy_run(trained_run, tmp_path)
    assert_ok(postconv("evaluate", str(run), *GROUPED))  # all 3 checkpoints at once
    assert_same_samples(run, one_by_one)
    grouped = samples_of(run)
    assert len(grouped) == 3 * 2
    for scenario in ("no_push", "push_0.5_0.1-0.3s"):
        copy, original = grouped[(scenario, "model_5", "seed_0")], grouped[(scenario, "model_1", "seed_0")]
        for name in ARRAYS:
            np.testing.assert_array_equal(copy[name], original[name])
        # and the test could fail: another policy in the same world gives other samples
        assert not np.array_equal(grouped[(scenario, "model_0", "seed_0")]["psi"], original["psi"])


def test_interrupted_evaluation_resumes_without_recomputing_and_equals_an_uninterrupted_one(
    trained_run, one_by_one, tmp_path
):
    run = copy_run(trained_run, tmp_path)
    proc = start_evaluation(run, ONE_BY_ONE)
    wait_until(proc, lambda: finished_sets(run), "the first sample set")
    interrupt(proc)
    done = finished_sets(run)
    assert 1 <= len(done) < 6
    assert not list(samples_root(run).glob("*/*/.*.partial*")), "a partial folder was left"
    assert_resumes(run, ONE_BY_ONE, done, one_by_one)


def test_corrupt_and_foreign_checkpoints_are_reported_and_the_others_ranked(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path, duplicate_last=False)
    (run / "model_7.pt").write_bytes(b"not a checkpoint" * 10)
    # a small fake of another task's checkpoint: rsl_rl 5 layout, 48 observations -> 12 actions
    foreign = {
        "mlp.0.weight": torch.zeros(32, 48),
        "mlp.0.bias": torch.zeros(32),
        "mlp.2.weight": torch.zeros(12, 32),
        "obs_normalizer._mean": torch.zeros(1, 48),  # the run normalizes observations
        "obs_normalizer._std": torch.ones(1, 48),
    }
    torch.save({"actor_state_dict": foreign, "iter": 9}, run / "model_9.pt")
    proc = postconv("run", str(run), *GROUPED, "--n-boot", "0")
    assert_ok(proc)
    result = json.loads((run / "postconv" / "selection.json").read_text())
    assert sorted(c["name"] for c in result["checkpoints"]) == ["model_0", "model_1"]
    assert "not a readable torch checkpoint" in result["skipped"]["model_7"]
    assert "another task" in result["skipped"]["model_9"]
    assert "skipped model_7" in proc.stdout
    assert "skipped model_9" in proc.stdout


def test_postconv_train_trains_through_isaaclab_then_selects(tmp_path):
    proc = postconv(
        "train", "--task", "PostConv-Velocity-Flat-G1", "--num_envs", "4", "--max_iterations", "2",
        "--device", "cpu", "agent.num_steps_per_env=8", "agent.save_interval=1",
        "--eval-num_envs", "4", "--eval-envs-per-checkpoint", "2", "--eval-steps", "12", "--eval-burn-in", "4",
        "--scenarios", "none", "--n-boot", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert_ok(proc)
    # --device cpu alone: the learner follows it (Isaac Lab's --device moves the simulation only)
    assert "the learner follows --device: agent.device=cpu" in proc.stdout
    (run,) = (tmp_path / "logs" / "rsl_rl" / "g1_flat").iterdir()
    result = json.loads((run / "postconv" / "selection.json").read_text())
    assert sorted(c["name"] for c in result["checkpoints"]) == ["model_0", "model_1"]
    assert result["scenarios"] == ["no_push"]
    assert "post-convergence stage on" in proc.stdout
    # the training itself ran with the automatic stage off: the stage ran once, here
    assert "starts at exit" not in proc.stdout


def test_the_review_holds_charts_a_report_the_exported_policy_and_an_offline_wandb_run(trained_run):
    report = trained_run / "postconv" / "report"
    selection = json.loads((trained_run / "postconv" / "selection.json").read_text())
    chosen = selection["chosen"]
    for chart in ("estimates", "worst_case_vs_k", "rank_change", "tilt"):
        assert (report / f"{chart}.png").read_bytes()[:4] == b"\x89PNG"
    page = (report / "report.html").read_text()
    assert f"Chosen: <b>{chosen}</b>" in page
    assert page.count("data:image/png;base64,") >= 4
    # the baselines beside the worst case: one row per ranked checkpoint, from the real run's
    # training curve and its samples' falls
    assert "What other rules pick" in page
    rows = (report / "baselines.csv").read_text().splitlines()
    assert rows[0].startswith("checkpoint,iteration,train_reward,sim_falls,mean,worst_case_k")
    assert [r.split(",")[0] for r in rows[1:]] == [c["name"] for c in selection["checkpoints"]]
    # what one sample was, for a reader of the file, the report and the W&B run (TINY_STAGE's sizes)
    sample = selection["sample"]
    assert (sample["unit"], sample["psi"], sample["sense"]) == ("episode", "reward", "reward")
    assert (sample["burn_in_steps"], sample["recorded_steps"]) == (4, 12)
    assert (
        "averaged over its steps at least 4 steps after the env's start or respawn" in sample["description"]
    )
    assert f"A sample: {sample['description']}".replace("'", "&#x27;") in page
    # the exported policy (normalizer inside) computes the checkpoint's actions
    from postconv.evaluation.policy import load_actor
    from postconv.storage.checkpoints import open_run

    run = open_run(trained_run)
    actor = load_actor(trained_run / f"{chosen}.pt", run.agent_cfg)
    obs = torch.randn(5, actor.obs_dim)
    scripted = torch.jit.load(str(report / f"{chosen}_policy.pt"))
    torch.testing.assert_close(scripted(obs), actor(obs))
    import onnx
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(onnx.load(str(report / f"{chosen}_policy.onnx")))
    np.testing.assert_allclose(session.run(None, {"obs": obs.numpy()})[0], actor(obs).numpy(), atol=1e-5)
    # ...and its card accounts for every input and output, from the run's own params
    card = json.loads((report / f"{chosen}_policy.json").read_text())
    assert card["checks"] == {"observation": "ok", "action_term": "ok", "joints": "ok"}
    assert (card["checkpoint"], card["files"]["onnx"]) == (chosen, f"{chosen}_policy.onnx")
    assert sum(t["size"] for t in card["observation"]["terms"]) == actor.obs_dim
    # the W&B run, offline (no credentials in tests), read back by wandb's own reader
    (log,) = (trained_run / "postconv" / "wandb").glob("offline-run-*/run-*.wandb")
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    proc = subprocess.run(
        [wandb_cli, "leet", "inspect", "--summary", "--json", str(log)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["project"] == "postconv"
    assert record["config"]["task"] == "PostConv-Velocity-Flat-G1"
    assert record["config"]["sample"] == sample
    assert record["summary"]["chosen"] == chosen
    assert record["summary"]["chosen_by_mean"] == selection["chosen_by_mean"]
    assert record["summary"]["chosen_by_worst_case"] == selection["chosen_by_worst_case"]
    assert record["summary"]["chosen_because"] == selection["chosen_because"]
    for chart in ("estimates", "worst_case_vs_k", "rank_change", "tilt"):
        assert record["summary"][f"charts/{chart}"]["_type"] == "image-file"
    for k in selection["config"]["k"]:
        assert record["summary"][f"chosen_k{k:g}"] in {"model_0", "model_1"}
    table = json.loads((log.parent / "files" / record["summary"]["selection/table"]["path"]).read_text())
    assert table["columns"][:4] == ["checkpoint", "iteration", "scenario", "status"]
    assert len(table["data"]) == 2 * (1 + len(selection["scenarios"]))  # checkpoints x (pooled + scenarios)
    assert {row[0] for row in table["data"]} == {"model_0", "model_1"}
