"""The stage's plumbing without a simulator: options, errors, the sample store, job planning.

Sample folders here are written by the store's own writer with synthetic arrays (what a
rollout would write); the rollouts themselves are tested in tests/sim/test_stage.py.
"""

import json
import pickle
import sys
from dataclasses import replace

import numpy as np
import pytest

from postconv.cli.options import build_parser, stage_config
from postconv.evaluation.rollout import CheckpointRef, EvalJob, RolloutSpec, plan_jobs
from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.stage.config import StageConfig
from postconv.stage.run import evaluate, select_run
from postconv.storage.checkpoints import RunError
from postconv.storage.sample import steps_since_reset
from postconv.storage.sample_store import (
    SampleWriter,
    find_samples,
    is_complete,
    sample_dir,
    settled,
    to_sample_set,
)
from postconv.tasks.scenarios import parse_scenario

TASK = "PostConv-Velocity-Flat-G1"


def _write(root, scenario, checkpoint, seed, psi, key="k", iteration=0, terms=None, episode=None, burn_in=0):
    steps, envs = psi.shape
    terms = np.stack([psi, np.zeros_like(psi)], -1) if terms is None else terms
    episode = np.zeros((steps, envs)) if episode is None else episode
    terminated = np.zeros((steps, envs), bool)
    terminated[:-1] = episode[1:] != episode[:-1]  # the step before a new episode ended the old one
    writer = SampleWriter(sample_dir(root, scenario, checkpoint, seed), steps, envs, terms.shape[-1], 1)
    writer.write(0, {"terms": terms, "psi": psi, "features": np.zeros((steps, envs, 1)),
                     "episode": episode, "terminated": terminated,
                     "truncated": np.zeros((steps, envs), bool)})  # fmt: skip
    meta = {"key": key, "checkpoint": {"name": checkpoint, "iteration": iteration},
            "reward_terms": ["alive", "effort"][: terms.shape[-1]], "feature_names": ["h"],
            "spec": {"burn_in_steps": burn_in}}  # fmt: skip
    return writer.finish(meta)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such run folder; pass logs/rsl_rl/<experiment>/<timestamp>"),
        (lambda p: p, "no model_<iter>.pt checkpoints; is this an rsl_rl run folder, and did training save?"),
    ],
)
def test_a_folder_that_is_not_a_run_gets_an_error_naming_the_fix(tmp_path, make, message):
    with pytest.raises(RunError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        evaluate(make(tmp_path), StageConfig())


def test_a_run_of_another_task_is_refused_before_any_simulation(tmp_path):
    (tmp_path / "model_0.pt").write_bytes(b"")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "agent.yaml").write_text("seed: 0\n")
    (tmp_path / "run.json").write_text(json.dumps({"task": "Isaac-Velocity-Flat-Anymal-D-v0"}))
    with pytest.raises(RunError, match="trained on 'Isaac-Velocity-Flat-Anymal-D-v0'; postconv evaluates"):
        evaluate(tmp_path, StageConfig())


def test_unreadable_checkpoints_are_skipped_by_name_and_none_left_is_an_error_listing_each(tmp_path):
    (tmp_path / "model_0.pt").symlink_to(tmp_path / "gone.pt")  # dangling: the file was moved away
    (tmp_path / "model_10.pt").mkdir()  # a folder where a file should be
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "agent.yaml").write_text("seed: 0\n")
    (tmp_path / "run.json").write_text(json.dumps({"task": TASK}))
    with pytest.raises(RunError) as err:
        evaluate(tmp_path, StageConfig(after_convergence=False))
    message = str(err.value)
    assert "none of the 2 candidate checkpoints could be evaluated" in message
    assert "model_0: cannot be read (No such file or directory): restore model_0.pt" in message
    assert "model_10: cannot be read (Is a directory): restore model_10.pt" in message
    record = json.loads((tmp_path / "postconv" / "evaluation.json").read_text())
    assert set(record["skipped"]) == set(record["candidates"]) == {"model_0", "model_10"}
    # the selection on that record says the same, not "run postconv evaluate first"
    with pytest.raises(RunError, match="none of the 2 candidate checkpoints could be evaluated"):
        select_run(tmp_path, StageConfig())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 8, "envs_per_checkpoint": 16}, "num_envs (8) is smaller than envs_per_checkpoint (16)"),
        ({"num_seeds": 0}, "--num-seeds must be an integer >= 1; got 0"),
        (
            {"num_envs": 70},
            "num_envs (70) is not a multiple of envs_per_checkpoint (16); use --num_envs 64 or 80",
        ),
        ({"checkpoints_per_job": 5}, "checkpoints_per_job must be between 1 and the env's 4 groups; got 5"),
        ({"sense": "loss"}, "sense must be 'reward' or 'cost'; got 'loss'"),
        ({"scenarios": ("none", "no_push")}, "give one or more distinct scenarios"),
        ({"scenarios": ("0.5",)}, "scenario '0.5': write 'none' or VELOCITY@LOW-HIGH"),
        ({"scenarios": ("0.5@3-1",)}, "push interval must satisfy 0 < low <= high"),
        ({"ray_workers": 0}, "ray_workers must be >= 1 and ray_retries >= 0; got 0 and 2"),
        ({"ray_retries": -1}, "ray_workers must be >= 1 and ray_retries >= 0; got None and -1"),
    ],
)
def test_bad_stage_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StageConfig(**kwargs)


def test_cli_flags_map_onto_the_stage_config():
    args = build_parser().parse_args(
        ["run", "RUN", "--num_envs", "32", "--envs-per-checkpoint", "8", "--scenarios", "none", "1@2-4",
         "--psi", "track_linear_velocity=1", "foot_slip=-0.5", "--from-iter", "100", "--k", "2", "4", "--seed", "3"]
    )  # fmt: skip
    config = stage_config(args)
    assert (config.num_envs, config.envs_per_checkpoint, config.groups) == (32, 8, 4)
    assert [parse_scenario(s).name for s in config.scenarios] == ["no_push", "push_1_2-4s"]
    assert config.psi_terms == {"track_linear_velocity": 1.0, "foot_slip": -0.5}
    assert (config.from_iter, config.seed, config.selection.k, config.selection.seed) == (
        100,
        3,
        (2.0, 4.0),
        3,
    )


@pytest.mark.parametrize(
    ("flags", "ray", "workers", "ship"),
    [
        ([], None, None, False),
        (["--ray"], "local", None, False),
        (["--ray", "auto", "--ray-workers", "8", "--ray-ship"], "auto", 8, True),
        (["--ray", "10.0.0.1:6379"], "10.0.0.1:6379", None, False),
    ],
)
def test_ray_flags_map_onto_the_stage_config(flags, ray, workers, ship):
    config = stage_config(build_parser().parse_args(["evaluate", "RUN", *flags]))
    assert (config.ray, config.ray_workers, config.ray_ship, config.ray_retries) == (ray, workers, ship, 2)


def test_ray_asked_for_but_not_installed_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(
        ModuleNotFoundError,
        match=r"Ray is not installed; install Ray for --ray: pip install 'postconv\[ray\]'",
    ):
        evaluate(tmp_path, StageConfig(ray="local"))


def test_train_passes_isaaclab_arguments_through_and_keeps_its_own():
    args, rest = build_parser().parse_known_args(
        [
            "train",
            "--task",
            TASK,
            "--num_envs",
            "4096",
            "--eval-num_envs",
            "16",
            "--eval-steps",
            "10",
            "agent.seed=1",
        ]
    )
    assert rest == ["--task", TASK, "--num_envs", "4096", "agent.seed=1"]
    assert (args.num_envs, args.steps) == (16, 10)


def test_jobs_cover_every_checkpoint_scenario_and_seed_once_and_pickle(tmp_path):
    spec = RolloutSpec(task=TASK, envs_per_checkpoint=2, steps=4, burn_in_steps=0)
    refs = [CheckpointRef(f"/x/model_{i}.pt", f"model_{i}", i, f"{i:064d}") for i in range(5)]
    scenarios = [parse_scenario("none"), parse_scenario("0.5@1-3")]
    jobs = plan_jobs(
        spec,
        refs,
        scenarios,
        [0, 1, 2],
        tmp_path,
        {"clip_actions": 1.0},
        checkpoints_per_job=2,
        seeds_per_job=2,
        env_config={"rewards": {"alive": {"weight": 1.0}}},
    )
    units = [(c.name, j.scenario.name, s) for j in jobs for c in j.checkpoints for s in j.seeds]
    assert len(units) == len(set(units)) == 5 * 2 * 3
    assert max(len(j.checkpoints) for j in jobs) == 2
    copy = pickle.loads(pickle.dumps(jobs[0]))
    assert copy == jobs[0]
    assert copy.agent_cfg == jobs[0].agent_cfg


@pytest.mark.parametrize(
    ("device", "runs_on"), [("cuda:3", "cuda:0"), ("cuda", "cuda:0"), ("cuda:0", "cuda:0"), ("cpu", "cpu")]
)
def test_a_ray_gpu_worker_runs_its_job_on_the_one_gpu_it_sees_under_the_same_keys(tmp_path, device, runs_on):
    from postconv.evaluation.ray_eval import on_visible_gpu

    spec = RolloutSpec(task=TASK, envs_per_checkpoint=4, burn_in_steps=2, steps=3, num_envs=8, device=device)
    ref = CheckpointRef(str(tmp_path / "model_0.pt"), "model_0", 0, "sha")
    (job,) = plan_jobs(
        spec, [ref], [parse_scenario("none")], [0], str(tmp_path), {}, 2, env_config={"physics": "x"}
    )
    moved = on_visible_gpu(job)
    assert moved.spec.device == runs_on
    assert moved.key(ref, 0) == job.key(ref, 0)


def test_a_job_redoes_only_folders_that_are_missing_or_made_another_way(tmp_path):
    spec = RolloutSpec(task=TASK, envs_per_checkpoint=2, steps=3, burn_in_steps=0)
    refs = (CheckpointRef("/x/a.pt", "a", 0, "0" * 64), CheckpointRef("/x/b.pt", "b", 1, "1" * 64))
    job = EvalJob(spec, refs, parse_scenario("none"), (0,), str(tmp_path), {})
    assert job.todo() == {0: refs}
    _write(tmp_path, "no_push", "a", 0, np.ones((3, 2), np.float32), key=job.key(refs[0], 0))
    _write(tmp_path, "no_push", "b", 0, np.ones((3, 2), np.float32), key="made with other settings")
    assert job.todo() == {0: (refs[1],)}
    assert job.key(refs[0], 0) != job.key(refs[0], 1)
    for changed in ({"steps": 4}, {"num_envs": 4}, {"device": "cuda:0"}, {"features": ("command",)}):
        other = EvalJob(replace(spec, **changed), refs, job.scenario, (0,), str(tmp_path), {})
        assert other.key(refs[0], 0) != job.key(refs[0], 0), changed
    # what the issue found missing: the env config, the actor, the simulation stack's versions
    env = {"rewards": {"alive": {"weight": 1.0}}, "sim": {"dt": 0.005}}
    with_env = replace(job, env_config=env)
    assert with_env.key(refs[0], 0) != job.key(refs[0], 0)
    heavier = replace(job, env_config={**env, "rewards": {"alive": {"weight": 2.0}}})
    assert heavier.key(refs[0], 0) != with_env.key(refs[0], 0)
    wider = replace(job, agent_cfg={"actor": {"hidden_dims": [512, 256, 128]}})
    assert wider.key(refs[0], 0) != job.key(refs[0], 0)
    assert replace(job, agent_cfg={"max_iterations": 5000}).key(refs[0], 0) == job.key(
        refs[0], 0
    )  # training-only
    same_kind = EvalJob(replace(spec, device="cuda:0"), refs, job.scenario, (0,), str(tmp_path), {})
    assert same_kind.key(refs[0], 0) == replace(same_kind, spec=replace(spec, device="cuda:1")).key(
        refs[0], 0
    )


def test_a_rerun_says_which_setting_differs_before_it_recomputes(tmp_path):
    import postconv.evaluation.rollout as rollout

    spec = RolloutSpec(task=TASK, envs_per_checkpoint=2, steps=3, burn_in_steps=0)
    ref = CheckpointRef("/x/a.pt", "a", 0, "0" * 64)
    env = {
        "rewards": {"alive": {"weight": 1.0}, "flat_orientation_l2": {"weight": -1.0}},
        "sim": {"dt": 0.005},
    }
    before = EvalJob(spec, (ref,), parse_scenario("none"), (0,), str(tmp_path), {}, env_config=env)
    meta = {"identity": json.loads(json.dumps(before.identity(ref, 0))), "env_config": env}
    edited = {**env, "rewards": {**env["rewards"], "alive": {"weight": 2.0}}}
    after = replace(before, env_config=edited, spec=replace(spec, steps=4))
    after = replace(after, versions={**before.versions, "isaaclab": "9.9"})
    said = rollout.differences(meta, after, ref, 0)
    assert "env config rewards.alive.weight: 1.0 -> 2.0" in said
    assert "spec steps: 3 -> 4" in said
    assert any(line.startswith("versions isaaclab: ") and line.endswith("-> 9.9") for line in said)
    assert rollout.differences({"key": "old"}, after, ref, 0) == [
        "made by an older postconv that did not record its settings"
    ]


def test_the_eval_env_config_is_the_same_in_every_process_and_follows_the_task_config():
    pytest.importorskip("isaaclab", reason="the env config comes from the task's Isaac Lab config")
    import subprocess
    import sys

    from postconv.evaluation.rollout import eval_env_config
    from postconv.storage.sample_store import config_hash

    spec = RolloutSpec(task="PostConv-Stand-G1", envs_per_checkpoint=2, num_envs=4)
    here = config_hash(eval_env_config(spec))
    code = (
        "from postconv.evaluation.rollout import RolloutSpec, eval_env_config; from postconv.storage.sample_store import config_hash;"
        "print(config_hash(eval_env_config(RolloutSpec(task='PostConv-Stand-G1', envs_per_checkpoint=2, num_envs=4))))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert here == there
    config = eval_env_config(spec)
    assert config["rewards"]["alive"]["weight"] > 0  # the reward weights are in it


def _interrupt_on_call(real, n: int):
    """``real``, but raising Ctrl-C on its n-th call (a fake of the signal's timing only)."""
    calls = 0

    def wrapped(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize(
    ("where", "owner", "name", "call"),
    [
        ("creating the third array", np.lib.format, "open_memmap", 3),
        ("writing meta.json", "store", "atomic_write_text", 1),
        ("renaming it into place", "store", "_publish", 1),
    ],
)
def test_ctrl_c_while_a_writer_is_made_or_finished_leaves_no_partial_folder(
    tmp_path, monkeypatch, where, owner, name, call
):
    import postconv.storage.sample_store as store

    owner = store if owner == "store" else owner
    monkeypatch.setattr(owner, name, _interrupt_on_call(getattr(owner, name), call))
    folder = sample_dir(tmp_path, "no_push", "a", 0)
    with pytest.raises(KeyboardInterrupt):
        SampleWriter(folder, 3, 2, 2, 1).finish({"checkpoint": "a"})
    left = list(folder.parent.iterdir())
    assert not left, f"Ctrl-C while {where} left {left}"


@pytest.mark.parametrize("call", [2, 3], ids=["moving_the_old_one_aside", "renaming_the_new_one_in"])
def test_ctrl_c_while_a_set_is_published_over_a_complete_one_keeps_the_old_one(tmp_path, monkeypatch, call):
    import os

    import postconv.storage.sample_store as store

    folder = sample_dir(tmp_path, "no_push", "a", 0)
    SampleWriter(folder, 3, 2, 2, 1).finish({"checkpoint": "old"})
    # os.replace: 1 writes meta.json, 2 moves the old folder aside, 3 renames the new one in
    monkeypatch.setattr(store.os, "replace", _interrupt_on_call(os.replace, call))
    with pytest.raises(KeyboardInterrupt):
        SampleWriter(folder, 3, 2, 2, 1).finish({"checkpoint": "new"})
    monkeypatch.undo()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert json.loads((folder / "meta.json").read_text())["checkpoint"] == "old"


def test_a_second_ctrl_c_while_the_old_set_is_put_back_leaves_it_for_the_next_clean_up(tmp_path, monkeypatch):
    import os

    import postconv.storage.sample_store as store

    folder = sample_dir(tmp_path, "no_push", "a", 0)
    SampleWriter(folder, 3, 2, 2, 1).finish({"checkpoint": "old"})
    interrupted = _interrupt_on_call(_interrupt_on_call(os.replace, 3), 3)  # calls 3 and 4
    monkeypatch.setattr(store.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        SampleWriter(folder, 3, 2, 2, 1).finish({"checkpoint": "new"})
    monkeypatch.undo()
    assert not folder.exists()  # the old set sits aside, named apart from partial folders
    store.discard_partials(folder)  # what an interrupted rollout does next: it must survive
    store.remove_partials(tmp_path)  # what the next stage does first: it goes back
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert json.loads((folder / "meta.json").read_text())["checkpoint"] == "old"


def test_a_partial_folder_is_never_seen_and_a_damaged_one_is_not_complete(tmp_path):
    folder = sample_dir(tmp_path, "no_push", "a", 0)
    writer = SampleWriter(folder, 3, 2, 2, 1)
    writer.write(0, {"psi": np.ones((3, 2))})
    assert not folder.exists()
    writer.abort()
    assert not any(folder.parent.iterdir())
    done = _write(tmp_path, "no_push", "a", 0, np.ones((3, 2), np.float32))
    assert is_complete(done, "k")
    assert not is_complete(done, "another key")
    (done / "psi.npy").write_bytes(b"truncated")
    assert not is_complete(done, "k")


def _two_by_two_grid(tmp_path, seed):
    """Two checkpoints x two scenarios x two seeds of random (4 steps, 3 envs) samples."""
    root = tmp_path / "postconv" / "samples"
    rng = np.random.default_rng(seed)
    for scenario in ("no_push", "push"):
        for i, name in enumerate(("model_0", "model_1")):
            for s in (0, 1):
                _write(root, scenario, name, s, rng.normal(size=(4, 3)).astype(np.float32), iteration=i)
    return root, find_samples(tmp_path)


def test_sample_sets_pool_scenarios_and_seeds_with_seed_slots_as_bootstrap_groups(tmp_path):
    root, index = _two_by_two_grid(tmp_path, seed=0)
    assert index.scenarios == ["no_push", "push"]
    samples, left_out = to_sample_set(index)
    assert left_out == {}
    assert samples.psi.shape == (2, 2 * 2 * 4 * 3)
    # one group per (seed, env slot): slot j of a seed is the same world in every scenario
    assert len(np.unique(samples.groups)) == 2 * 3
    first = np.load(root / "no_push" / "model_1" / "seed_0" / "psi.npy")
    np.testing.assert_array_equal(samples.psi[1, :12], first.reshape(-1))
    # psi from the stored terms: a weighted sum, no re-evaluation
    weighted, _ = to_sample_set(index, term_weights={"alive": 2.0})
    np.testing.assert_allclose(weighted.psi, 2 * samples.psi, rtol=1e-6)
    with pytest.raises(ValueError, match=r"unknown reward terms \['speed'\] in psi; the run's terms are"):
        to_sample_set(index, term_weights={"speed": 1.0})


def test_episode_samples_are_each_env_slots_mean_over_its_recording_grouped_by_slot(tmp_path):
    root, index = _two_by_two_grid(tmp_path, seed=2)
    steps, _ = to_sample_set(index, unit="step")
    episodes, _ = to_sample_set(index, unit="episode")
    assert episodes.psi.shape == (2, 2 * 2 * 3)  # scenarios x seeds x env slots
    first = np.load(root / "no_push" / "model_1" / "seed_0" / "psi.npy")
    np.testing.assert_allclose(episodes.psi[1, :3], first.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        episodes.psi.mean(axis=1), steps.psi.mean(axis=1), rtol=1e-5
    )  # same plain mean
    assert sorted(np.unique(episodes.groups)) == sorted(
        np.unique(steps.groups)
    )  # the same slots, resampled alike
    with pytest.raises(ValueError, match="unknown unit 'trial'; choose one of episode, step"):
        to_sample_set(index, unit="trial")


def test_steps_since_reset_restart_at_every_new_episode_and_the_first_one_counts_its_burn_in():
    episode = np.array([[0, 0], [0, 1], [1, 1], [1, 1], [1, 2], [2, 2]])
    since = steps_since_reset(episode, 2)
    assert since[:, 0].tolist() == [2, 3, 0, 1, 2, 0]
    assert since[:, 1].tolist() == [2, 0, 1, 2, 0, 1]
    # env 1 reset during the burn-in, one step before the recording began
    assert steps_since_reset(episode, np.array([2, 1]))[:, 1].tolist() == [1, 0, 1, 2, 0, 1]


def test_the_respawn_after_a_fall_is_burnt_in_and_a_fall_always_counts(tmp_path):
    root = tmp_path / "postconv" / "samples"
    # env 0 falls at step 3 (new episode from step 4) and again at step 5, right after its respawn
    episode = np.array([[0, 0]] * 4 + [[1, 0]] * 2 + [[2, 0]] * 4)
    psi = np.full((10, 2), 0.02, np.float32)
    psi[[3, 5], 0] = -4.0  # the falls
    psi[[4, 6, 7], 0] = -1.0  # respawn transients
    for name in ("model_0", "model_1"):
        _write(root, "push", name, 0, psi, iteration=int(name[-1]), episode=episode, burn_in=3)
    keep = settled(root / "push" / "model_0" / "seed_0")
    assert keep[:, 0].tolist() == [True] * 4 + [False, True] + [False] * 3 + [True]
    assert keep[:, 1].all()
    index = find_samples(tmp_path)
    episodes, _ = to_sample_set(index, unit="episode")
    np.testing.assert_allclose(
        episodes.psi[0], [(0.02 * 4 - 8.0) / 6, 0.02], rtol=1e-6
    )  # transients left out
    steps, _ = to_sample_set(index, unit="step")
    assert steps.weights is not None
    assert steps.weights[0].reshape(10, 2)[:, 0].tolist() == keep[:, 0].astype(float).tolist()
    result = select(steps, SelectionConfig(k=(1.0, 2.0), n_boot=20))  # paired: every slot in every row
    assert np.isfinite(result.checkpoints[0].worst_case).all()


def test_the_stage_selects_per_episode_by_default_and_per_step_when_asked(tmp_path):
    root = tmp_path / "postconv" / "samples"
    rng = np.random.default_rng(1)
    for i, name in enumerate(("model_0", "model_1")):
        _write(root, "no_push", name, 0, (rng.normal(size=(50, 4)) + i).astype(np.float32), iteration=i)
    evaluation = {"scenarios": ["no_push"], "candidates": ["model_0", "model_1"], "skipped": {},
                  "sample_sets": [["no_push", f"model_{i}", 0, "k"] for i in range(2)]}  # fmt: skip
    (tmp_path / "postconv" / "evaluation.json").write_text(json.dumps(evaluation))
    by_episode = select_run(
        tmp_path, StageConfig(scenarios=("none",), selection=_fast_selection(), report=False)
    )
    assert by_episode.pooled.samples_per_checkpoint == 4
    config = StageConfig(scenarios=("none",), selection=_fast_selection(), report=False, unit="step")
    assert select_run(tmp_path, config).pooled.samples_per_checkpoint == 200


def test_a_checkpoint_missing_a_seed_is_left_out_with_the_reason(tmp_path):
    root = tmp_path / "postconv" / "samples"
    for name, seeds in (("model_0", (0, 1)), ("model_1", (0,)), ("model_2", (0, 1))):
        for seed in seeds:
            _write(root, "no_push", name, seed, np.ones((4, 3), np.float32), iteration=int(name[-1]))
    samples, left_out = to_sample_set(find_samples(tmp_path))
    assert samples.names == ("model_0", "model_2")
    assert left_out == {"model_1": "no complete samples for no_push seed 1"}


def test_only_the_folders_of_the_last_evaluation_count(tmp_path):
    root = tmp_path / "postconv" / "samples"
    for seed, key in ((0, "new"), (1, "old"), (2, "old")):  # seeds 1, 2 from an earlier --num-seeds 3
        _write(root, "no_push", "model_0", seed, np.ones((4, 3), np.float32), key=key)
    _write(root, "no_push", "model_1", 0, np.ones((4, 3), np.float32), key="stale")  # made another way
    index = find_samples(tmp_path, {("no_push", "model_0", 0): "new", ("no_push", "model_1", 0): "new"})
    assert list(index.folders) == [("no_push", "model_0", 0)]
    samples, _ = to_sample_set(index)
    assert samples.psi.shape == (1, 12)


def test_select_run_ranks_stored_samples_and_writes_results(tmp_path):
    root = tmp_path / "postconv" / "samples"
    rng = np.random.default_rng(1)
    for i, name in enumerate(("model_0", "model_1", "model_2")):
        _write(root, "no_push", name, 0, (rng.normal(size=(50, 4)) + i).astype(np.float32), iteration=i)
    evaluation = {"scenarios": ["no_push"], "candidates": ["model_0", "model_1", "model_2", "model_3"],
                  "skipped": {"model_3": "model_3.pt: not a readable torch checkpoint"},
                  "sample_sets": [["no_push", f"model_{i}", 0, "k"] for i in range(4)]}  # fmt: skip
    _write(root, "no_push", "model_4", 0, np.ones((50, 4), np.float32), iteration=4)  # not a candidate
    (tmp_path / "postconv" / "evaluation.json").write_text(json.dumps(evaluation))
    config = StageConfig(scenarios=("none",), selection=_fast_selection(), report=False)
    results = select_run(tmp_path, config)
    assert results.pooled.chosen == "model_2"
    assert [c.name for c in results.pooled.checkpoints] == ["model_0", "model_1", "model_2"]
    assert results.pooled.skipped == evaluation["skipped"]
    assert (tmp_path / "postconv" / "selection.json").is_file()
    assert (tmp_path / "postconv" / "by_scenario" / "no_push.csv").is_file()


def test_an_interrupted_evaluation_is_on_record_as_unfinished_and_the_selection_says_so(
    tmp_path, monkeypatch
):
    from rich.console import Console

    import postconv.stage.run as stage

    for i in (0, 10):
        (tmp_path / f"model_{i}.pt").write_bytes(b"planned, never loaded")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "agent.yaml").write_text("seed: 0\n")
    (tmp_path / "run.json").write_text(json.dumps({"task": TASK}))

    def interrupted(*args, **kwargs):  # Ctrl-C during the rollouts
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "_run_jobs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tmp_path, StageConfig(after_convergence=False, scenarios=("none",)))
    record = json.loads((tmp_path / "postconv" / "evaluation.json").read_text())
    assert record["finished"] is False
    assert {c for _, c, _, _ in record["sample_sets"]} == {"model_0", "model_10"}
    # one checkpoint's set was published before the interrupt
    scenario, name, seed, key = next(u for u in record["sample_sets"] if u[1] == "model_0")
    rng = np.random.default_rng(0)
    _write(
        tmp_path / "postconv" / "samples",
        scenario,
        name,
        seed,
        rng.normal(size=(50, 4)).astype(np.float32),
        key=key,
    )
    console = Console(record=True, width=200)
    results = select_run(tmp_path, StageConfig(selection=_fast_selection(), report=False), console)
    assert [c.name for c in results.pooled.checkpoints] == ["model_0"]
    assert results.pooled.skipped == {"model_10": "never evaluated: run `postconv evaluate` again"}
    assert "the last evaluation did not finish" in console.export_text()


def _one_scenario_evaluated(tmp_path):
    """Samples of three checkpoints in no_push; the record names push too, whose jobs all failed."""
    root = tmp_path / "postconv" / "samples"
    rng = np.random.default_rng(2)
    for i in range(3):
        _write(
            root, "no_push", f"model_{i}", 0, (rng.normal(size=(50, 4)) + i).astype(np.float32), iteration=i
        )
    names = [f"model_{i}" for i in range(3)]
    evaluation = {"scenarios": ["no_push", "push"], "candidates": names,
                  # the push job of all three failed on Ray: all are skipped, yet have no_push samples
                  "skipped": {n: "its Ray job failed 3 times; run the same command again" for n in names},
                  "sample_sets": [[sc, n, 0, "k"] for sc in ("no_push", "push") for n in names]}  # fmt: skip
    (tmp_path / "postconv" / "evaluation.json").write_text(json.dumps(evaluation))


def test_a_scenario_whose_evaluation_failed_is_left_out_of_the_ranking_and_said(tmp_path):
    from rich.console import Console

    _one_scenario_evaluated(tmp_path)
    stale = tmp_path / "postconv" / "by_scenario" / "old_scenario.json"  # ranked by an earlier selection
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    console = Console(record=True, width=200)
    results = select_run(tmp_path, StageConfig(selection=_fast_selection(), report=False), console)
    assert not stale.exists()
    assert sorted(p.name for p in stale.parent.iterdir()) == ["no_push.csv", "no_push.json"]
    assert results.pooled.scenarios == ["no_push"]
    assert list(results.by_scenario) == ["no_push"]
    assert [c.name for c in results.pooled.checkpoints] == ["model_0", "model_1", "model_2"]
    assert "no samples for scenario push: its evaluation failed" in console.export_text()


def test_a_ranking_that_fails_leaves_the_previous_results_whole(tmp_path, monkeypatch):
    import postconv.stage.run as stage

    _one_scenario_evaluated(tmp_path)
    config = StageConfig(selection=_fast_selection(), report=False)
    select_run(tmp_path, config)
    written = {p: p.read_bytes() for p in (tmp_path / "postconv").rglob("*.json")}
    calls = []

    def fails_on_the_pool(samples, config):  # the per-scenario ranking works, the pooled one fails
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("the solver gave up")
        return select(samples, config)

    monkeypatch.setattr(stage, "select", fails_on_the_pool)
    with pytest.raises(ValueError, match="the solver gave up"):
        select_run(tmp_path, replace(config, selection=SelectionConfig(n_boot=11)))
    assert {p: p.read_bytes() for p in (tmp_path / "postconv").rglob("*.json")} == written


def test_selecting_a_run_never_evaluated_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation on record; run `postconv evaluate"):
        select_run(tmp_path, StageConfig())


def _fast_selection():
    from postconv.ranking.config import SelectionConfig

    return SelectionConfig(n_boot=10)


@pytest.mark.parametrize(
    ("device", "training_envs", "given", "sizes"),
    [
        ("cpu", 4096, {}, (64, 16)),  # the CPU defaults, whatever the training ran
        ("cpu", None, {"envs_per_checkpoint": 8}, (32, 8)),
        ("cuda:0", 4096, {}, (4096, 256)),  # the training's env count, 16 checkpoints at once
        ("cuda:0", 6000, {}, (5888, 256)),  # rounded down to whole groups
        ("cuda:0", 256, {}, (1024, 256)),  # a small training still gets a GPU-sized budget
        ("cuda:0", None, {}, (4096, 256)),  # no env.yaml: 4096
        ("cuda:0", None, {"num_envs": 2048}, (2048, 256)),
        ("cuda:0", None, {"num_envs": 1008}, (1008, 16)),  # the largest of 256..16 that divides it
        ("cuda:1", 4096, {"envs_per_checkpoint": 512}, (4096, 512)),
        ("cuda:0", 4096, {"num_envs": 2048, "envs_per_checkpoint": 128}, (2048, 128)),
    ],
)
def test_evaluation_sizes_follow_the_device_and_the_training_never_the_candidates(
    device, training_envs, given, sizes
):
    config = StageConfig(device=device, **given)
    sized, why = config.sized_for(training_envs)
    assert (sized.num_envs, sized.envs_per_checkpoint) == sizes
    assert sized.num_envs % sized.envs_per_checkpoint == 0
    assert ("CPU defaults" in why) == (device == "cpu" and len(given) < 2)
    # "given" names exactly the sizes the user gave, never one the defaults filled in
    named = {"num_envs": "--num_envs", "envs_per_checkpoint": "--envs-per-checkpoint"}
    assert {o for o, flag in named.items() if flag in why} == set(given), why
    assert all(f"{named[o]} {v}" in why for o, v in given.items()), why


def test_sizes_changed_through_replace_are_used_and_named_as_given():
    sized, why = replace(StageConfig(), num_envs=32, envs_per_checkpoint=8).sized_for(None)
    assert (sized.num_envs, sized.envs_per_checkpoint, why) == (
        32,
        8,
        "given --num_envs 32, --envs-per-checkpoint 8",
    )
    sized, why = replace(StageConfig(device="cuda:0"), num_envs=2048).sized_for(4096)
    assert (sized.num_envs, why) == (2048, "sized for cuda:0; given --num_envs 2048")
    assert StageConfig() == StageConfig(num_envs=64, envs_per_checkpoint=16)  # the same sizes, however given


def test_a_gpu_config_checks_what_it_can_at_once_and_waits_for_the_training_for_the_rest():
    config = StageConfig(device="cuda:0", checkpoints_per_job=40)
    assert (config.num_envs, config.envs_per_checkpoint, config.sized) == (None, 256, False)
    with pytest.raises(ValueError, match="the evaluation's env size waits for the training's"):
        _ = config.groups
    sized, _ = config.sized_for(4096)
    assert (sized.groups, sized.checkpoints_per_job) == (16, 16)  # capped at the env's groups
    with pytest.raises(ValueError, match="--num_envs 1000: on cuda:0 it must be a multiple of 16"):
        StageConfig(device="cuda:0", num_envs=1000)  # before any training
    assert StageConfig().groups == 4  # the CPU is sized at once
