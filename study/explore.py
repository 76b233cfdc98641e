r"""Exploration for the confirmation study: which selection method deserves a pre-registered test?

Everything here scores the candidates from **exactly the samples the post-convergence stage
ranks** (:func:`postconv.storage.sample_store.to_sample_set`: one sample per env slot's recording in
one scenario, the per-step value averaged over its settled steps, burn-in after respawns left
out, falls counted) and judges the scores against **robustness margins**
(``postconv sim2sim --stress``): each candidate's largest survivable magnitude per kind of
shift, so that no outcome is empty for a seed, as fixed worlds were.

Scores (larger = predicted better), each computed with the stage's own estimators:

- baselines: ``last`` (the training iteration: "take the last checkpoint"), ``mean`` (the
  plain mean of the per-episode reward: the worst case at k = 0), ``sim_falls`` (minus the
  falls in the stage's samples), ``train_reward`` (the training curve at the checkpoint);
- ``wc[episode,k]``: the stage's default family, the per-episode worst case at radius k;
- ``wc[step,k]``: one sample per settled step;
- ``wc[upright,k]`` / ``upright``: psi = minus the pelvis tilt (1 + g_z) per episode;
- ``wc[composite,k]``: psi = reward - tilt per episode x (std of the per-episode reward /
  std of the per-episode tilt, over all candidates), one scale for every candidate;
- ``worst_scenario_rank[k]``: minus the candidate's worst rank over the push scenarios.

Rules (they pick one candidate, they do not rank): ``evidence[SCORE,p]`` keeps the last
checkpoint unless the score's best candidate beats it in at least a share p of the paired
bootstrap replicates the stage draws (the same env slots resampled for every candidate).

Measures per seed and outcome: Spearman of each score with the margin, and regret@1 (the
best candidate's margin minus the pick's) as a share of the kind's searched range (top -
bottom), so that regrets of different kinds pool. Pooled over kinds: the mean regret and
the mean Spearman, each kind weighted alike.

This module reads what the stage and ``postconv sim2sim --stress`` wrote; the one thing it
simulates is the sample-size curve (``--twin-envs``): the same candidates, scenarios and
sizes sampled in the C MuJoCo twin with more env slots, then subsampled
(``python -m postconv.study.explore 0=RUN_DIR 1=RUN_DIR ... [--twin-envs 256]``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy.stats import rankdata

from postconv.selection import agreement, bootstrap, worst_case
from postconv.storage.sample import per_unit
from postconv.storage.sample_store import (
    STAGE_DIR,
    SampleIndex,
    checkpoint_columns,
    fall_counts,
    find_samples,
    read_meta,
    to_sample_set,
)
from postconv.storage.samples_file import SampleSet
from postconv.study.samples import SelectionSamples
from postconv.tasks.scenarios import scenario_text

KS: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
"""Radii scored (with 32 episodes per candidate, log n = 3.5: k >= 3.5 is the single worst one)."""
EVIDENCE_P: tuple[float, ...] = (0.8, 0.9, 0.95)
"""Shares of bootstrap replicates a candidate must beat the last checkpoint in to replace it."""
N_BOOT = 500
TILT = "projected_gravity.z"


@dataclass(frozen=True)
class StageSamples:
    """A seed's candidates as the stage ranked them. C candidates, n episodes each."""

    names: tuple[str, ...]
    iterations: np.ndarray
    """(C,) training iteration, ascending: the last candidate is the last checkpoint."""
    episodes: SampleSet
    """(C, n) per-episode task reward, pooled over the scenarios (the stage's default sample)."""
    steps: SampleSet
    """(C, N) per settled step (``weights`` zero the unsettled ones)."""
    upright: SampleSet
    """(C, n) per episode: minus the pelvis tilt (1 + g_z) averaged over the settled steps."""
    composite: SampleSet
    """(C, n) per episode: reward - tilt x scale (one scale for all candidates)."""
    by_scenario: dict[str, SampleSet]
    """scenario -> (C, n_s) per-episode reward in that scenario alone."""
    falls: np.ndarray
    """(C,) falls in the stage's samples."""
    dyn: SampleSet | None = None
    """(C, n_d) per-episode reward in the ``+dyn`` scenarios (per-env dynamics draws), if the
    evaluation had any; every field above comes from the nominal scenarios alone."""
    dyn_falls: np.ndarray | None = None
    """(C,) falls in the ``+dyn`` scenarios."""
    push_dyn: SampleSet | None = None
    """(C, n + n_d) every scenario's episodes, as the stage pools them when it ranks them all."""


def _tilt_episodes(index: SampleIndex, names, scenarios) -> np.ndarray:
    """(C, n) per-episode pelvis tilt 1 + g_z over the settled steps, read as the report's charts
    read the samples (:func:`postconv.storage.sample_store.checkpoint_columns`), in the order
    :func:`to_sample_set` stacks the scenarios and seeds."""
    rows = []
    for name in names:
        _, columns, column_names = checkpoint_columns(index, name, scenarios, unit="episode")
        rows.append(1.0 + columns[:, column_names.index(f"state/{TILT}")])
    return np.stack(rows)


def stage_index(run_dir: Path) -> tuple[dict, SampleIndex]:
    """The stage's last evaluation and the index of its sample folders only (as the stage
    reads them: folders an earlier evaluation left, e.g. of another seed, stay out)."""
    evaluation = json.loads((run_dir / STAGE_DIR / "evaluation.json").read_text())
    expected = {(sc, c, seed): key for sc, c, seed, key in evaluation["sample_sets"]}
    return evaluation, find_samples(run_dir, expected)


def _dynamics_scenarios(index: SampleIndex, scenarios: tuple[str, ...]) -> set[str]:
    """The scenarios whose sample folders record per-env dynamics draws (``+dyn``)."""
    first = {sc: folder for (sc, _, _), folder in index.folders.items()}
    return {
        sc for sc in scenarios if sc in first and read_meta(first[sc]).get("scenario", {}).get("dynamics")
    }


def stage_samples(run_dir: Path) -> StageSamples:
    """The stage's samples of its last evaluation's candidates (``postconv evaluate`` wrote them):
    the nominal scenarios' in every field, the ``+dyn`` scenarios' apart."""
    evaluation, index = stage_index(run_dir)
    dyn_scenarios = _dynamics_scenarios(index, tuple(evaluation["scenarios"]))
    scenarios = tuple(sc for sc in evaluation["scenarios"] if sc not in dyn_scenarios)
    candidates = tuple(evaluation["candidates"])
    episodes, left_out = to_sample_set(index, scenarios, candidates, unit="episode")
    if left_out:
        raise ValueError(
            f"{run_dir}: candidates without complete samples: {left_out}; rerun `postconv evaluate`"
        )
    names = episodes.names
    dyn = dyn_falls = push_dyn = None
    if dyn_scenarios:
        dyn, left_out = to_sample_set(index, tuple(sorted(dyn_scenarios)), names, unit="episode")
        if left_out or dyn.names != names:
            raise ValueError(f"{run_dir}: candidates without complete +dyn samples: {left_out}")
        dyn_falls = fall_counts(index, names, dyn_scenarios).astype(np.float64)
        push_dyn, _ = to_sample_set(index, tuple(evaluation["scenarios"]), names, unit="episode")
    steps, _ = to_sample_set(index, scenarios, names, unit="step")
    by_scenario = {sc: to_sample_set(index, (sc,), names, unit="episode")[0] for sc in scenarios}
    tilt = _tilt_episodes(index, names, scenarios)
    falls = fall_counts(index, names, scenarios).astype(np.float64)
    scale = float(np.std(episodes.psi) / max(np.std(tilt), 1e-12))
    return StageSamples(
        names=names,
        iterations=np.array([index.iterations[c] for c in names]),
        episodes=episodes,
        steps=steps,
        upright=SampleSet(psi=-tilt, names=names, groups=episodes.groups),
        composite=SampleSet(psi=episodes.psi - scale * tilt, names=names, groups=episodes.groups),
        by_scenario=by_scenario,
        falls=falls,
        dyn=dyn,
        dyn_falls=dyn_falls,
        push_dyn=push_dyn,
    )


def episode_samples(x: SelectionSamples, slots: np.ndarray | None = None) -> SampleSet:
    """(C, S x m) per-episode task reward of study samples (Isaac Lab's or the twin's), as the
    stage defines a sample (:func:`postconv.storage.sample.per_unit` over the settled steps),
    scenario after scenario; ``slots``: only these env slots of each scenario (a smaller
    evaluation of the same episodes). Env slot j is one bootstrap group in every scenario."""
    if x.settled is None:
        raise ValueError("these samples carry no settled mask; sample them again (study.samples)")
    slots = np.arange(x.terminated.shape[-1]) if slots is None else np.asarray(slots)
    reward = x.reward[..., slots]
    keep = x.settled[..., slots]
    psi = np.stack(
        [np.concatenate([per_unit(reward[c, s], "episode", keep[c, s]) for s in range(len(x.scenarios))])
         for c in range(len(x.names))]
    )  # fmt: skip
    return SampleSet(psi=psi, names=x.names, groups=np.tile(np.arange(slots.size), len(x.scenarios)))


def _wc(samples: SampleSet, ks: tuple[float, ...]) -> np.ndarray:
    """(C, K) worst-case values (the stage's estimator)."""
    return worst_case(samples.psi, samples.weights, k=np.asarray(ks), sense="reward").value


def scores(
    s: StageSamples, train_reward: np.ndarray | None = None, ks: tuple[float, ...] = KS
) -> dict[str, np.ndarray]:
    """Score name -> (C,) (larger = predicted better)."""
    out = episode_scores(s.episodes, s.iterations, ks) | {
        "sim_falls": -s.falls,
        "train_reward": np.full(len(s.names), np.nan)
        if train_reward is None
        else np.asarray(train_reward, float),
        "upright": s.upright.psi.mean(axis=1, dtype=np.float64),
    }
    for family, samples in (("step", s.steps), ("upright", s.upright), ("composite", s.composite)):
        values = _wc(samples, ks)
        for j, k in enumerate(ks):
            out[f"wc[{family},k={k:g}]"] = values[:, j]
    per_scenario = np.stack([_wc(x, ks) for x in s.by_scenario.values()])  # (S, C, K)
    ranks = rankdata(-per_scenario, method="min", axis=1)  # 1 = best, per scenario and k; ties share
    for j, k in enumerate(ks):
        out[f"worst_scenario_rank[k={k:g}]"] = -ranks[:, :, j].max(axis=0).astype(np.float64)
    if s.dyn is not None:
        out |= dynamics_scores(s.dyn, s.push_dyn, s.dyn_falls, ks)
    return out


def dynamics_scores(
    dyn: SampleSet, both: SampleSet, dyn_falls: np.ndarray, ks: tuple[float, ...] = KS
) -> dict[str, np.ndarray]:
    """Scores from the ``+dyn`` scenarios' per-episode rewards: ``mean[dyn]``, ``wc[dyn,k]``,
    ``sim_falls[dyn]``, and every scenario's pooled (``mean[push+dyn]``, ``wc[push+dyn,k]``:
    the stage's own ranking when it evaluates them all)."""
    out = {"mean[dyn]": dyn.psi.mean(axis=1, dtype=np.float64), "sim_falls[dyn]": -dyn_falls,
           "mean[push+dyn]": both.psi.mean(axis=1, dtype=np.float64)}  # fmt: skip
    for label, samples in (("dyn", dyn), ("push+dyn", both)):
        values = _wc(samples, ks)
        for j, k in enumerate(ks):
            out[f"wc[{label},k={k:g}]"] = values[:, j]
    return out


def episode_scores(
    episodes: SampleSet, iterations: np.ndarray, ks: tuple[float, ...] = KS
) -> dict[str, np.ndarray]:
    """``last``, ``mean`` and ``wc[episode,k]`` for each k: the scores a per-episode sample set alone gives."""
    out = {"last": iterations.astype(np.float64), "mean": episodes.psi.mean(axis=1, dtype=np.float64)}
    values = _wc(episodes, ks)
    for j, k in enumerate(ks):
        out[f"wc[episode,k={k:g}]"] = values[:, j]
    return out


def p_better_than_last(samples: SampleSet, k: float, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(C,) share of paired bootstrap replicates in which each candidate's worst case at k
    (k = 0: its mean) exceeds the last candidate's; the replicates resample the env slots
    alike for every candidate, as the stage's intervals do."""
    boot = bootstrap(
        samples.psi, samples.groups, k=k, weights=samples.weights, n_boot=n_boot, paired=True, seed=seed
    )
    reps = boot.replicates[:, :, 0]  # (R, C)
    return (reps > reps[:, -1:]).mean(axis=0)


def evidence_picks(
    episodes: SampleSet, ps: tuple[float, ...] = EVIDENCE_P, dyn: SampleSet | None = None
) -> dict[str, int]:
    """Rule name -> the picked candidate's index: the best by the score, if it beats the last
    (the last row) in a share >= p of the replicates, else the last. With ``dyn`` (the +dyn
    scenarios' episodes), also the rule on their worst case at k = 2."""
    rules = [("mean", episodes, 0.0), ("wc[episode,k=2]", episodes, 2.0)]
    if dyn is not None:
        rules.append(("wc[dyn,k=2]", dyn, 2.0))
    picks = {}
    for label, samples, k in rules:
        values = _wc(samples, (k,))[:, 0]
        best = int(np.argmax(values))
        p = p_better_than_last(samples, k)[best]
        for share in ps:
            picks[f"evidence[{label},p={share:g}]"] = best if p >= share else len(samples.names) - 1
    return picks


# -- outcomes: robustness margins ------------------------------------------------------------


@dataclass(frozen=True)
class MarginOutcomes:
    """Per kind of shift, every candidate's margin and the kind's searched range."""

    margin: dict[str, np.ndarray]
    """kind -> (C,) margin, in the kind's unit."""
    span: dict[str, float]
    """kind -> top - bottom of the search: regrets are shares of it."""


def margin_outcomes(run_dir: Path, names: tuple[str, ...]) -> MarginOutcomes:
    """The margins ``postconv sim2sim --stress`` wrote for these candidates."""
    path = run_dir / STAGE_DIR / "sim2sim" / "stress" / "margins.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no margins; run `postconv sim2sim {run_dir} --stress` first")
    data = json.loads(path.read_text())
    missing = sorted(set(names) - set(data["checkpoints"]))
    if missing:
        raise ValueError(
            f"{path}: no margins for {missing}; rerun `postconv sim2sim --stress` after the stage"
        )
    return MarginOutcomes(
        margin={k: np.array([v["margin"][c] for c in names]) for k, v in data["kinds"].items()},
        span={k: float(v["top"] - v["bottom"]) for k, v in data["kinds"].items()},
    )


# -- measures ------------------------------------------------------------------------------------


def regret1(pick: int | np.ndarray, outcome: np.ndarray) -> float:
    """The best candidate's outcome minus the pick's (an array of tied picks: their mean)."""
    return float(outcome.max() - np.mean(outcome[np.atleast_1d(pick)]))


def top(score: np.ndarray) -> np.ndarray:
    """Indices of the score's best candidates (all of them where the best ties)."""
    return np.flatnonzero(score == np.nanmax(score))


def measure_seed(
    seed: int, sc: dict[str, np.ndarray], picks: dict[str, int], outcomes: MarginOutcomes
) -> list[dict]:
    """Rows (seed, method, kind, spearman, regret1 as a share of the kind's range)."""
    rows = []
    methods = {name: top(v) for name, v in sc.items() if np.all(np.isfinite(v))} | {
        name: np.array([i]) for name, i in picks.items()
    }
    for kind, margin in outcomes.margin.items():
        for name, pick in methods.items():
            rho = (
                agreement(sc[name], margin, at=(1,)).spearman if name in sc and np.ptp(margin) > 0 else np.nan
            )
            rows.append({"seed": seed, "method": name, "kind": kind, "spearman": rho,
                         "regret1": regret1(pick, margin) / outcomes.span[kind]})  # fmt: skip
    return rows


def pooled(rows: list[dict]) -> list[dict]:
    """Per method: regret@1 and Spearman averaged over kinds (equal weight), per seed and over seeds."""
    by: dict[str, dict[int, list[dict]]] = {}
    for r in rows:
        by.setdefault(r["method"], {}).setdefault(r["seed"], []).append(r)
    out = []
    for method, seeds in by.items():
        row = {"method": method}
        regrets, rhos = [], []
        for seed, rs in sorted(seeds.items()):
            reg = float(np.mean([r["regret1"] for r in rs]))
            rho = (
                float(np.nanmean([r["spearman"] for r in rs]))
                if any(np.isfinite(r["spearman"]) for r in rs)
                else np.nan
            )
            row[f"regret1_s{seed}"], row[f"spearman_s{seed}"] = reg, rho
            regrets.append(reg)
            rhos.append(rho)
        row["regret1"], row["spearman"] = (
            float(np.mean(regrets)),
            float(np.nanmean(rhos)) if np.any(np.isfinite(rhos)) else np.nan,
        )
        out.append(row)
    return sorted(out, key=lambda r: r["regret1"])


def size_curve(
    seed: int,
    twin: SelectionSamples,
    outcomes: MarginOutcomes,
    sizes: tuple[int, ...],
    draws: int = 20,
) -> list[dict]:
    """Regret@1 and Spearman against the episodes per candidate: each size's env slots drawn
    ``draws`` times without replacement from the twin's (the same slots for every candidate:
    a smaller evaluation of the same episodes), measured as :func:`measure_seed` and averaged
    over the draws. Rows (seed, size, episodes, method, kind, spearman, regret1)."""
    m = twin.terminated.shape[-1]
    rng = np.random.default_rng([seed, m])
    rows = []
    for size in sizes:
        if size > m:
            raise ValueError(f"{size} env slots per scenario asked; the twin's samples have {m}")
        per_draw = []
        for _ in range(1 if size == m else draws):
            episodes = episode_samples(twin, np.sort(rng.choice(m, size, replace=False)))
            sc = episode_scores(episodes, twin.iterations)
            per_draw.append(measure_seed(seed, sc, evidence_picks(episodes), outcomes))
        for i, first in enumerate(per_draw[0]):
            rows.append({**first, "size": size, "episodes": size * len(twin.scenarios),
                         "spearman": float(np.nanmean([d[i]["spearman"] for d in per_draw]))
                         if np.isfinite(first["spearman"]) else np.nan,
                         "regret1": float(np.mean([d[i]["regret1"] for d in per_draw]))})  # fmt: skip
    return rows


def candidate_rows(
    seed: int, s: StageSamples, sc: dict[str, np.ndarray], outcomes: MarginOutcomes
) -> list[dict]:
    """One row per candidate: every score and every margin."""
    return [
        {"seed": seed, "checkpoint": n, "iteration": int(s.iterations[i]),
         **{name: float(v[i]) for name, v in sc.items()},
         **{f"margin[{k}]": float(m[i]) for k, m in outcomes.margin.items()}}
        for i, n in enumerate(s.names)
    ]  # fmt: skip


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def print_pooled(summary: list[dict], console: Console, seeds: list[int]) -> None:
    table = Table(
        title="Exploration: regret@1 (share of each kind's range) and Spearman, averaged over kinds"
    )
    table.add_column("method")
    for seed in seeds:
        table.add_column(f"regret s{seed}", justify="right")
        table.add_column(f"rho s{seed}", justify="right")
    table.add_column("regret", justify="right")
    table.add_column("rho", justify="right")
    for r in summary:
        cells = []
        for seed in seeds:
            cells += [
                f"{r.get(f'regret1_s{seed}', np.nan):.3f}",
                f"{r.get(f'spearman_s{seed}', np.nan):+.2f}",
            ]
        table.add_row(escape(r["method"]), *cells, f"{r['regret1']:.3f}", f"{r['spearman']:+.2f}")
    console.print(table)


TWIN_FILE = "explore_twin_samples.npz"
"""The twin's samples of a run's candidates (``<run>/postconv/``), kept for reruns."""


def twin_samples(run_dir: Path, envs: int, console: Console) -> SelectionSamples:
    """The stage's candidates, scenarios, burn-in and steps sampled in the C MuJoCo twin with
    ``envs`` env slots per scenario (read back when already sampled alike)."""
    from postconv.study.samples import from_twin

    evaluation, index = stage_index(run_dir)
    names = sorted(evaluation["candidates"], key=lambda c: index.iterations[c])
    metas = {sc: read_meta(folder) for (sc, c, _), folder in index.folders.items() if c == names[0]}
    metas = [metas[sc] for sc in sorted(evaluation["scenarios"])]  # the order to_sample_set stacks them
    scenarios = [scenario_text(m["scenario"]) for m in metas if not m["scenario"].get("dynamics")]
    spec = metas[0]["spec"]
    path = run_dir / STAGE_DIR / TWIN_FILE
    key = {"names": names, "scenarios": scenarios, "envs": envs, "burn_in": spec["burn_in_steps"],
           "steps": spec["steps"]}  # fmt: skip
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file() and json.loads(meta.read_text()) == key:
        return SelectionSamples.load(path)
    console.print(f"sampling {len(names)} candidates x {envs} envs x {scenarios} in the twin")
    twin = from_twin(run_dir, tuple(names), tuple(scenarios), envs, spec["burn_in_steps"], spec["steps"])
    twin.save(path)
    meta.write_text(json.dumps(key))
    return twin


def explore(
    runs: dict[int, Path],
    out_dir: Path,
    console: Console | None = None,
    twin_envs: int = 0,
    sizes: tuple[int, ...] = (16, 64, 256),
) -> dict[str, Path]:
    """Score every seed's candidates, judge them on their margins, write the CSVs, print the
    table; with ``twin_envs``, also the sample-size curve from the twin's samples."""
    from postconv.storage.checkpoints import open_run, training_curve
    from postconv.study.analysis import curve_at

    console = console or Console()
    candidates, measures, curve = [], [], []
    for seed, run_dir in sorted(runs.items()):
        s = stage_samples(run_dir)
        sc = scores(s, curve_at(s.iterations, training_curve(open_run(run_dir))))
        outcomes = margin_outcomes(run_dir, s.names)
        candidates += candidate_rows(seed, s, sc, outcomes)
        measures += measure_seed(seed, sc, evidence_picks(s.episodes, dyn=s.dyn), outcomes)
        if twin_envs:
            curve += size_curve(seed, twin_samples(run_dir, twin_envs, console), outcomes, sizes)
    summary = pooled(measures)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "candidates": out_dir / "candidates.csv",
        "measures": out_dir / "measures.csv",
        "summary": out_dir / "summary.csv",
    }
    paths["candidates"].write_text(to_csv(candidates))
    paths["measures"].write_text(to_csv(measures))
    paths["summary"].write_text(to_csv(summary))
    print_pooled(summary, console, sorted(runs))
    if curve:
        paths["size_curve"] = out_dir / "size_curve.csv"
        paths["size_curve"].write_text(to_csv(curve))
        print_size_curve(curve, console)
    return paths


def print_size_curve(rows: list[dict], console: Console) -> None:
    """Per method and episodes per candidate: regret@1 and Spearman averaged over kinds and seeds."""
    sizes = sorted({r["episodes"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table = Table(
        title="Twin: regret@1 / Spearman against episodes per candidate (mean over kinds and seeds)"
    )
    table.add_column("method")
    for n in sizes:
        table.add_column(f"{n} episodes", justify="right")
    for method in methods:
        cells = []
        for n in sizes:
            rs = [r for r in rows if r["method"] == method and r["episodes"] == n]
            rho = (
                np.nanmean([r["spearman"] for r in rs])
                if any(np.isfinite(r["spearman"]) for r in rs)
                else np.nan
            )
            cells.append(f"{np.mean([r['regret1'] for r in rs]):.3f} / {rho:+.2f}")
        table.add_row(escape(method), *cells)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m postconv.study.explore", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "runs", nargs="+", metavar="SEED=RUN_DIR", help="a seed and its run folder, e.g. 0=outputs/s0"
    )
    parser.add_argument("--out", type=Path, default=Path("study/results/explore"))
    parser.add_argument("--twin-envs", type=int, default=0,
                        help="also sample the candidates in the C MuJoCo twin with this many envs per scenario "
                        "and measure regret against episodes per candidate (e.g. 256)")  # fmt: skip
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        seed, sep, path = item.partition("=")
        if not sep or not seed.isdigit():
            parser.error(f"{item!r}: give SEED=RUN_DIR, e.g. 0=outputs/explore/stand_s0")
        runs[int(seed)] = Path(path)
    for path in explore(runs, args.out, twin_envs=args.twin_envs).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
