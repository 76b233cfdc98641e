"""A samples file read in chunks hands the selection exactly its arrays, and `postconv select`
streams a large one with the ranking it gets from the file loaded whole."""

import json

import numpy as np
import pytest
import torch

import postconv.ranking.select
from postconv.cli import main
from postconv.storage.file_source import NotStreamable, NpzSource
from postconv.storage.samples_file import SampleSet, save_samples


def _arrays(rng, b=3, n=1000, dtype=np.float32, weights=False, fortran=False, groups_2d=False):
    psi = (0.02 + 0.005 * rng.standard_normal((b, n))).astype(dtype)
    psi[rng.random(psi.shape) < 0.01] = -4.0
    if fortran:
        psi = np.asfortranarray(psi)
    labels = np.repeat(rng.permutation(50) * 7 + 3, n // 50)  # any integers, not 0..G-1
    tiled = np.tile(labels, (b, 1))
    arrays = {"psi": psi, "groups": (np.asfortranarray(tiled) if fortran else tiled) if groups_2d else labels}
    if weights:
        w = rng.random((b, n))
        w[:, -100:] = 0.0  # padding of shorter checkpoints
        arrays["weights"] = w
    return arrays


def _concatenated(source: NpzSource):
    chunks = list(source.chunks("test"))
    assert all(c.psi.shape[1] <= source.columns for c in chunks)
    psi = torch.cat([c.psi for c in chunks], 1).numpy()
    weights = None if chunks[0].weights is None else torch.cat([c.weights for c in chunks], 1).numpy()
    return psi, weights, torch.cat([c.groups for c in chunks]).numpy()


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"dtype": np.float64},
        {"fortran": True},
        {"weights": True},
        {"groups_2d": True},
        {"dtype": np.float64, "weights": True, "fortran": True, "groups_2d": True},
    ],
    ids=["float32", "float64", "fortran", "weights", "groups_per_checkpoint", "all"],
)
def test_the_chunks_of_an_uncompressed_file_are_its_arrays(tmp_path, layout):
    arrays = _arrays(np.random.default_rng(0), **layout)
    np.savez(tmp_path / "s.npz", **arrays, names=np.array(["a", "b", "c"]), sense=np.asarray("cost"))
    source = NpzSource(tmp_path / "s.npz", columns=300)
    assert source.shape == (3, 1000)
    assert source.names == ("a", "b", "c")
    assert source.sense == "cost"
    assert source.dtype == (torch.float64 if layout.get("dtype") == np.float64 else torch.float32)
    psi, weights, groups = _concatenated(source)
    np.testing.assert_array_equal(psi, arrays["psi"])
    if "weights" in arrays:
        np.testing.assert_array_equal(weights, arrays["weights"].astype(psi.dtype))
    else:
        assert weights is None
    labels = arrays["groups"][0] if layout.get("groups_2d") else arrays["groups"]
    assert source.n_groups == 50
    np.testing.assert_array_equal(groups, np.unique(labels, return_inverse=True)[1])
    assert [c.psi.shape[1] for c in source.chunks("again")] == [300, 300, 300, 100]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p, a: np.savez_compressed(p, **a),
            "psi is compressed, so it cannot be read in chunks; write the file with numpy.savez",
        ),
        (
            lambda p, a: np.savez(
                p, psi=a["psi"], groups=np.stack([a["groups"], a["groups"][::-1], a["groups"]])
            ),
            "the checkpoints' groups differ; a streamed bootstrap needs one group per sample shared",
        ),
    ],
    ids=["compressed", "groups_differ"],
)
def test_a_file_that_cannot_be_read_in_chunks_says_why(tmp_path, write, message):
    write(tmp_path / "s.npz", _arrays(np.random.default_rng(1)))
    with pytest.raises(NotStreamable, match=message):
        NpzSource(tmp_path / "s.npz")


def _select(path, out, capsys, *options):
    assert (
        main(["select", str(path), "--out", str(out), "--k", "1", "2", "6", "--n-boot", "40", *options]) == 0
    )
    return json.loads((out / "selection.json").read_text()), capsys.readouterr().out


@pytest.mark.parametrize("weights", [False, True], ids=["uniform", "weighted"])
def test_select_streams_a_large_file_with_the_ranking_of_the_file_loaded_whole(
    tmp_path, capsys, monkeypatch, weights
):
    rng = np.random.default_rng(2)
    arrays = _arrays(rng, b=4, n=4000, weights=weights)
    arrays["psi"] += (0.001 * np.arange(4, dtype=np.float32))[:, None]  # distinct checkpoints
    path = save_samples(
        tmp_path / "s.npz",
        SampleSet(
            psi=arrays["psi"], names=tuple("abcd"), groups=arrays["groups"], weights=arrays.get("weights")
        ),
    )
    whole, said = _select(path, tmp_path / "whole", capsys)
    assert "streamed" not in said
    monkeypatch.setattr(postconv.ranking.select, "STREAM_SAMPLES", 1000)
    streamed, said = _select(path, tmp_path / "streamed", capsys)
    assert "4,000 samples per checkpoint streamed from s.npz; bootstrap from group sums in" in " ".join(
        said.split()
    )
    assert streamed["bootstrap"]["method"] == "grouped"
    assert whole["bootstrap"]["method"] == "exact"
    assert streamed["chosen"] == whole["chosen"]
    for a, b in zip(streamed["checkpoints"], whole["checkpoints"], strict=True):
        assert a["name"] == b["name"]
        # float32 in the file: read as float32 when streamed, as float64 when loaded whole
        np.testing.assert_allclose(a["worst_case"], b["worst_case"], rtol=0, atol=1e-5)
        assert a["mean"] == pytest.approx(b["mean"], abs=1e-6)
        assert a["rank"] == b["rank"]
        np.testing.assert_allclose(a["interval"], b["interval"], rtol=0, atol=1e-4)


def test_select_says_a_large_compressed_file_is_read_whole(tmp_path, capsys, monkeypatch):
    arrays = _arrays(np.random.default_rng(3), b=2, n=1000)
    np.savez_compressed(tmp_path / "s.npz", **arrays)
    monkeypatch.setattr(postconv.ranking.select, "STREAM_SAMPLES", 100)
    result, said = _select(tmp_path / "s.npz", tmp_path, capsys, "--primary-k", "2")
    said = " ".join(said.split())
    assert "note: " in said
    assert "psi is compressed" in said
    assert "read whole into memory instead" in said
    assert result["bootstrap"]["method"] == "exact"


def test_string_group_labels_are_streamed_as_they_are_loaded(tmp_path):
    arrays = _arrays(np.random.default_rng(4))
    labels = np.array([f"env{i}" for i in arrays["groups"]])
    np.savez(tmp_path / "s.npz", psi=arrays["psi"], groups=labels)
    source = NpzSource(tmp_path / "s.npz", columns=300)
    np.testing.assert_array_equal(_concatenated(source)[2], np.unique(labels, return_inverse=True)[1])


def test_select_loads_a_large_file_whose_groups_are_too_fine_to_resample_by_group(
    tmp_path, capsys, monkeypatch
):
    psi = _arrays(np.random.default_rng(5), b=2, n=1000)["psi"]
    np.savez(tmp_path / "s.npz", psi=psi)  # no groups: every sample its own
    monkeypatch.setattr(postconv.ranking.select, "STREAM_SAMPLES", 100)
    result, said = _select(tmp_path / "s.npz", tmp_path, capsys)
    said = " ".join(said.split())
    assert "1,000 bootstrap groups for 1,000 samples per checkpoint are too fine to resample by group" in said
    assert "read whole into memory instead" in said
    assert result["bootstrap"]["method"] == "exact"


def test_a_truncated_file_is_an_error_that_names_it(tmp_path, capsys):
    path = save_samples(
        tmp_path / "s.npz", SampleSet(psi=np.ones((2, 500)), names=("a", "b"), groups=np.arange(500))
    )
    path.write_bytes(path.read_bytes()[:3000])
    assert main(["select", str(path)]) == 2
    assert "not a readable npz file" in " ".join(capsys.readouterr().out.split())
