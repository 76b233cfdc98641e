"""A run's per-step samples streamed from disk hand the selection exactly what stacking them
in memory does: the same samples, weights and groups, chunk by chunk, and the same ranking.

Sample folders are written by the store's own writer with synthetic arrays (what a rollout
would write), with respawns and falls so that the settled masks matter."""

import json

import numpy as np
import pytest
import torch
from rich.console import Console

import postconv.ranking.select
import postconv.storage.store_source
from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select, select_source
from postconv.stage.config import StageConfig
from postconv.stage.run import select_run
from postconv.storage.sample_store import (
    SampleWriter,
    checkpoint_columns,
    complete_checkpoints,
    find_samples,
    sample_dir,
    settled,
    to_sample_set,
)
from postconv.storage.store_source import StoreSource, _bits, settled_rows


def _episodes(rng, steps: int, envs: int) -> np.ndarray:
    """(steps, envs) episode indices: each env resets now and then (a fall or a time-out)."""
    return np.cumsum(rng.random((steps, envs)) < 0.03, axis=0).astype(np.int32)


def _store(tmp_path, checkpoints=3, scenarios=("no_push", "push"), seeds=(0, 1), steps=60, envs=8, seed=0,
           trend=0.002):  # fmt: skip
    """A run folder with a complete evaluation: samples of every checkpoint, scenario, seed
    (each later checkpoint's reward ``trend`` higher)."""
    rng = np.random.default_rng(seed)
    root = tmp_path / "postconv" / "samples"
    sets = []
    for c in range(checkpoints):
        name = f"model_{c * 10}"
        for scenario in scenarios:
            for s in seeds:
                psi = (0.02 + 0.005 * rng.standard_normal((steps, envs)) + trend * c).astype(np.float32)
                psi[rng.random(psi.shape) < 0.01] = -4.0
                episode = _episodes(rng, steps, envs)
                terminated = np.zeros((steps, envs), bool)
                terminated[:-1] = episode[1:] != episode[:-1]
                terms = np.stack([psi, np.full_like(psi, 0.5)], -1)
                writer = SampleWriter(sample_dir(root, scenario, name, s), steps, envs, 2, 1)
                writer.write(0, {"terms": terms, "psi": psi, "features": np.zeros((steps, envs, 1)),
                                 "episode": episode, "terminated": terminated,
                                 "truncated": np.zeros((steps, envs), bool)})  # fmt: skip
                writer.finish({"key": "k", "checkpoint": {"name": name, "iteration": c * 10},
                               "reward_terms": ["alive", "effort"], "feature_names": ["h"],
                               "spec": {"burn_in_steps": 3}, "age_at_start": 3})  # fmt: skip
                sets.append([scenario, name, s, "k"])
    evaluation = {"scenarios": list(scenarios), "candidates": [f"model_{c * 10}" for c in range(checkpoints)],
                  "skipped": {}, "sample_sets": sets}  # fmt: skip
    (tmp_path / "postconv" / "evaluation.json").write_text(json.dumps(evaluation))
    return find_samples(tmp_path)


def _streamed(source):
    chunks = list(source.chunks("test"))
    return (torch.cat([c.psi for c in chunks], 1).numpy(), torch.cat([c.weights for c in chunks], 1).numpy(),
            torch.cat([c.groups for c in chunks]).numpy())  # fmt: skip


@pytest.mark.parametrize("columns", [8, 24, 1 << 16])  # one step, a few, a whole folder per chunk
@pytest.mark.parametrize("term_weights", [None, {"alive": 2.0, "effort": 1.0}])
def test_streamed_samples_equal_the_stacked_ones_chunk_by_chunk(tmp_path, monkeypatch, columns, term_weights):
    index = _store(tmp_path)
    monkeypatch.setattr("postconv.storage.store_source.COLUMNS", columns)
    kept, _, units = complete_checkpoints(index)
    stacked, _ = to_sample_set(index, term_weights=term_weights, unit="step")
    with StoreSource(index, kept, units, term_weights) as source:
        psi, weights, groups = _streamed(source)
        assert source.shape == stacked.psi.shape
        assert source.n_groups == len(np.unique(stacked.groups)) == 2 * 8
    np.testing.assert_allclose(psi, stacked.psi, rtol=1e-6)
    np.testing.assert_array_equal(weights, stacked.weights)
    # the same partition into groups (the stacked labels are sparse, the streamed dense)
    dense = np.unique(stacked.groups, return_inverse=True)[1]
    np.testing.assert_array_equal(groups, dense)


@pytest.mark.parametrize("rows", [1, 2, 7, 60])
def test_settled_steps_read_in_blocks_equal_the_whole_folders(tmp_path, rows):
    index = _store(tmp_path, checkpoints=1, scenarios=("push",), seeds=(0,), seed=3)
    folder = next(iter(index.folders.values()))
    np.testing.assert_array_equal(np.concatenate(list(settled_rows(folder, rows))), settled(folder))


def test_a_streamed_selection_ranks_as_the_stacked_one(tmp_path):
    index = _store(tmp_path, seed=5)
    kept, _, units = complete_checkpoints(index)
    config = SelectionConfig(k=(1.0, 2.0, 6.0), n_boot=30)
    stacked, _ = to_sample_set(index, unit="step")
    here = select(stacked, config)
    with StoreSource(index, kept, units) as source:
        streamed = select_source(source, tuple(kept), "reward", config)
    assert streamed.chosen == here.chosen
    assert streamed.bootstrap["method"] == "grouped"
    assert here.bootstrap["method"] == "exact"
    for a, b in zip(streamed.checkpoints, here.checkpoints, strict=True):
        np.testing.assert_allclose(a.worst_case, b.worst_case, rtol=0, atol=1e-5)
        assert a.mean == pytest.approx(b.mean, abs=1e-9)
        assert a.rank == b.rank
        np.testing.assert_allclose(a.interval, b.interval, rtol=0, atol=1e-4)
        np.testing.assert_allclose(a.p_best, b.p_best, rtol=0, atol=0.05)


def test_the_stage_streams_large_per_step_sets_and_says_so(tmp_path, monkeypatch):
    _store(tmp_path, seed=6)
    config = StageConfig(unit="step", report=False, selection=SelectionConfig(n_boot=20))
    console = Console(record=True, width=200)
    in_memory = select_run(tmp_path, config, console)
    monkeypatch.setattr(postconv.ranking.select, "STREAM_SAMPLES", 100)
    masked = []  # the real settled_rows, counted: each folder's mask is made once for all pools

    def counted(folder, rows):
        masked.append(folder)
        return settled_rows(folder, rows)

    monkeypatch.setattr(postconv.storage.store_source, "settled_rows", counted)
    streamed = select_run(tmp_path, config, console)
    assert len(masked) == len(set(masked)) == 3 * 2 * 2  # checkpoints x scenarios x seeds
    text = console.export_text()
    assert "streamed from disk" in text
    assert "bootstrap from group sums" in text
    assert streamed.pooled.chosen == in_memory.pooled.chosen
    assert streamed.pooled.bootstrap["method"] == "grouped"
    for a, b in zip(streamed.pooled.checkpoints, in_memory.pooled.checkpoints, strict=True):
        np.testing.assert_allclose(a.worst_case, b.worst_case, rtol=0, atol=1e-5)
    assert set(streamed.by_scenario) == {"no_push", "push"}


def test_the_report_charts_read_every_sth_step_when_a_checkpoint_has_many(tmp_path):
    index = _store(tmp_path, checkpoints=1, scenarios=("push",), seeds=(0,), seed=8)
    folder = index.folders[("push", "model_0", 0)]
    psi, columns, names = checkpoint_columns(index, "model_0", ["push"], max_steps=60 * 8 // 4)
    keep = settled(folder)[::4]
    np.testing.assert_array_equal(psi, np.load(folder / "psi.npy")[::4][keep])
    np.testing.assert_array_equal(columns[:, :2], np.load(folder / "terms.npy")[::4][keep])
    assert names == ("reward/alive", "reward/effort", "state/h")
    weighted, _, _ = checkpoint_columns(index, "model_0", ["push"], {"effort": 2.0}, max_steps=60 * 8 // 4)
    np.testing.assert_allclose(weighted, 1.0)  # 2 x the stored 0.5


def test_packed_bits_read_back_for_every_unaligned_range():
    bits = np.random.default_rng(0).random(45) < 0.5
    packed = np.packbits(bits)
    for start in range(46):
        for stop in range(start, 46):
            np.testing.assert_array_equal(_bits(packed, start, stop), bits[start:stop])


def test_what_a_sample_was_comes_from_the_samples_not_the_selections_defaults(tmp_path):
    """``postconv select`` has no --burn-in: the record must say the burn-in the samples had (3)."""
    _store(tmp_path, checkpoints=2, seeds=(0,), seed=9)
    results = select_run(tmp_path, StageConfig(report=False, wandb=False, selection=SelectionConfig(n_boot=0)),
                         Console(quiet=True))  # fmt: skip
    assert StageConfig().burn_in_steps != 3
    assert results.pooled.sample["burn_in_steps"] == 3
    assert "at least 3 steps after" in results.pooled.sample["description"]
    assert all(r.sample == results.pooled.sample for r in results.by_scenario.values())


def test_the_stage_recommends_by_its_pick_rule_in_the_pooled_and_every_scenarios_result(tmp_path):
    _store(tmp_path, checkpoints=3, seeds=(0,), seed=4, trend=-0.1)  # the first is the best
    console = Console(record=True, width=200)
    config = StageConfig(report=False, wandb=False, selection=SelectionConfig(n_boot=20, pick="last"))
    results = select_run(tmp_path, config, console)
    for result in (results.pooled, *results.by_scenario.values()):
        assert result.chosen == "model_20"  # the last of model_0, model_10, model_20
        assert result.config.pick == "last"
    written = json.loads((tmp_path / "postconv" / "selection.json").read_text())
    assert written["chosen"] == "model_20"
    assert written["chosen_by_worst_case"] == "model_0"
    assert (
        "chosen checkpoint: model_20 (the last checkpoint (--pick last); the worst case at k = 2 picks model_0)"
        in (console.export_text())
    )
