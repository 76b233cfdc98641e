r"""The pre-registered confirmation (``study/preregistration.md``): fresh seeds, fixed method, one test.

``python -m postconv.study.confirm run [--seeds 100 101 ...]`` does, per seed, whatever is not yet
on disk: the training (``postconv train-mujoco``, resumed where it stopped), then the stage on
the pre-registered candidates and scenarios with the robustness margins as outcomes
(``postconv run ... --stress``). Every step is resumable across sessions; the heavy outputs stay
in ``outputs/confirm/``.

``python -m postconv.study.confirm analyze`` scores every finished seed exactly as the
exploration does (:mod:`postconv.study.explore`: the stage's own samples and estimators) and
writes the small results to ``study/results/confirm/``: ``candidates.csv`` (one row per seed and
checkpoint: every score and every margin), ``measures.csv`` (per seed, method and kind),
``per_seed.csv`` (per seed and method: regret@1 and Spearman averaged over kinds) and
``provenance.json`` (the git commit that ran each seed's steps). Only when every
pre-registered seed is in does it run the pre-registered test and write ``result.json`` and
``result.md``; before that it says how many seeds are in and computes no comparison.

The test, per comparison (method against baseline, one measure): the per-seed difference
:math:`d_s` (baseline's regret - method's, or method's Spearman - baseline's), statistic
:math:`\bar d`, one-sided exact sign-flip permutation p-value

.. math:: p = \frac{\#\{\sigma \in \{\pm 1\}^n : \overline{\sigma d} \ge \bar d\}}{2^n},

and a 95% percentile bootstrap interval of :math:`\bar d` over seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from postconv.study.explore import (
    candidate_rows,
    evidence_picks,
    margin_outcomes,
    measure_seed,
    scores,
    stage_samples,
    to_csv,
)


@dataclass(frozen=True)
class Protocol:
    """Every setting of the confirmation, fixed in ``study/preregistration.md`` before its data."""

    seeds: tuple[int, ...] = tuple(range(100, 110))
    """Fresh training seeds, never used in the exploration (seeds 0 to 2)."""
    iterations: int = 2000
    """PPO iterations per run (a checkpoint every 10; the push curriculum ends by ~1700)."""
    from_iter: int = 1700
    every: int = 2
    """Candidates: the checkpoints from ``from_iter`` on, one in ``every`` (16 of a 2000-iteration run)."""
    save_interval: int = 10
    """Iterations between the training's checkpoints (``train-mujoco``'s default)."""
    kinds: tuple[str, ...] = (
        "strength", "latency", "obs_delay", "push", "mass", "friction", "joint_friction", "noise", "combined",
    )  # fmt: skip
    """The kinds of shift whose margins are the outcomes (``sim2sim --stress`` at its defaults)."""
    scenarios: tuple[str, ...] = ("0.5@1-3", "1@2-4", "0.5@1-3+dyn", "1@2-4+dyn")
    """The stage's scenarios: the two push scenarios of the exploration, each also with
    per-env dynamics draws (``+dyn``)."""
    num_envs: int = 64
    envs_per_checkpoint: int = 16
    steps: int = 250
    burn_in: int = 50
    primary: str = "wc[push+dyn,k=2]"
    """The method under test (a score of :func:`postconv.study.explore.scores` or a rule of
    :func:`postconv.study.explore.evidence_picks`): since amendment 2, the worst case at k = 2
    over all four scenarios' per-episode samples."""
    secondary: tuple[str, ...] = ("evidence[wc[episode,k=2],p=0.9]", "wc[episode,k=2]")
    """At most two more methods, tested and reported the same way, not for the decision."""
    baselines: tuple[str, ...] = ("last", "mean", "sim_falls", "train_reward")
    """Reported beside every method."""
    against: tuple[str, ...] = ("mean", "last")
    """The baselines each method is tested against."""
    alpha: float = 0.05
    """One-sided level of each test."""
    n_boot: int = 10_000
    """Bootstrap resamples of the seeds for the intervals."""
    runs_root: str = "outputs/confirm"
    """Where the runs (checkpoints, samples, margins) go: ``<runs_root>/stand_s<seed>``."""

    def run_dir(self, seed: int) -> Path:
        return Path(self.runs_root) / f"stand_s{seed}"

    @property
    def methods(self) -> tuple[str, ...]:
        return (self.primary, *self.secondary)

    @property
    def candidate_iterations(self) -> tuple[int, ...]:
        """The registered candidates' iterations: ``from_iter`` on, one checkpoint in ``every``, and
        the last one (1700, 1720, ..., 1980, 1999)."""
        step = self.save_interval * self.every
        return (*range(self.from_iter, self.iterations - 1, step), self.iterations - 1)


PROTOCOL = Protocol()
RESULTS = Path("study/results/confirm")


# -- running -------------------------------------------------------------------------------------


def _postconv(*args: str, log: Path) -> None:
    """``postconv ARGS`` in its own process (one simulation per process), output appended to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    with log.open("a") as out:
        proc = subprocess.run([sys.executable, "-m", "postconv.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                              env=env, check=False)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"`postconv {' '.join(args)}` failed ({proc.returncode}); see {log}")


def trained(p: Protocol, seed: int) -> bool:
    return (p.run_dir(seed) / f"model_{p.iterations - 1}.pt").is_file()


def judged(p: Protocol, seed: int) -> bool:
    """The stage and the margins are on disk for this seed's run."""
    return (p.run_dir(seed) / "postconv" / "sim2sim" / "stress" / "margins.json").is_file()


def seed_state(p: Protocol, seed: int) -> dict:
    """Where one seed stands: its latest checkpoint's iteration (None before the first), whether
    the stage's ranking and the margins are on disk, and the commits that ran its steps."""
    run = p.run_dir(seed)
    # in the order they ran; * marks a work tree that differed from its commit
    commits = [r["commit"][:7] + ("*" if "modified" in r["commit"] else "") for r in _read_provenance(run)]
    iterations = [
        int(m.group(1))
        for f in run.glob("model_*.pt")
        if (m := re.fullmatch(r"model_(\d+)", f.stem, re.ASCII))
    ]
    return {
        "seed": seed,
        "iteration": max(iterations, default=None),
        "ranked": (run / "postconv" / "selection.json").is_file(),
        "judged": judged(p, seed),
        "commits": list(dict.fromkeys(commits)),
    }


def status_table(p: Protocol) -> Table:
    """Every pre-registered seed's state, for a study that spans sessions."""
    table = Table(title=f"Confirmation: {sum(judged(p, s) for s in p.seeds)} of {len(p.seeds)} seeds judged")
    for column in ("seed", "training", "ranked", "margins", "commits"):
        table.add_column(column)
    for seed in p.seeds:
        state = seed_state(p, seed)
        it = state["iteration"]
        training = (
            "not started" if it is None else f"{it + 1} / {p.iterations}" if it < p.iterations - 1 else "done"
        )
        table.add_row(str(seed), training, "yes" if state["ranked"] else "", "yes" if state["judged"] else "",
                      " ".join(state["commits"]))  # fmt: skip
    return table


def _commit() -> str:
    """The code's git commit (and whether the work tree differs), for the provenance record."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent)  # fmt: skip
        return proc.stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + (" (modified)" if git("status", "--porcelain", "--untracked-files=no") else "")


def _provenance(run: Path, step: str) -> None:
    """Append which code ran a step of this run (``<runs_root>/stand_s<seed>.provenance.jsonl``)."""
    import time

    record = {"step": step, "commit": _commit(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with run.parent.joinpath(f"{run.name}.provenance.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


def _read_provenance(run: Path) -> list[dict]:
    path = run.parent / f"{run.name}.provenance.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run_seed(p: Protocol, seed: int, console: Console) -> None:
    """Train (or resume) the seed's run, then the stage with its margins, skipping what is done."""
    run = p.run_dir(seed)
    run.parent.mkdir(parents=True, exist_ok=True)
    log = run.parent / f"stand_s{seed}.log"
    if not trained(p, seed):
        resume = ["--resume"] if any(run.glob("model_*.pt")) else []
        console.print(
            f"seed {seed}: training ({p.iterations} iterations){', resumed' if resume else ''}; log {log}"
        )
        _provenance(run, "train")
        _postconv("train-mujoco", "--iterations", str(p.iterations), "--seed", str(seed), "--run-dir", str(run),
                  *resume, log=log)  # fmt: skip
    if not judged(p, seed):
        console.print(f"seed {seed}: the stage and the robustness margins; log {log}")
        _provenance(run, "stage+stress")
        _postconv("run", str(run), "--from-iter", str(p.from_iter), "--every", str(p.every),
                  "--scenarios", *p.scenarios, "--num_envs", str(p.num_envs),
                  "--envs-per-checkpoint", str(p.envs_per_checkpoint), "--steps", str(p.steps),
                  "--burn-in", str(p.burn_in), "--stress", log=log)  # fmt: skip
    console.print(f"seed {seed}: done")


# -- analysis ------------------------------------------------------------------------------------


def seed_rows(p: Protocol, seed: int) -> tuple[list[dict], list[dict]]:
    """(per-candidate rows, per-kind measure rows) of one judged seed."""
    from postconv.storage.checkpoints import open_run, training_curve
    from postconv.study.analysis import curve_at

    run = p.run_dir(seed)
    s = stage_samples(run)
    outcomes = margin_outcomes(run, s.names)
    check_design(p, seed, s.iterations, tuple(outcomes.margin))
    sc = scores(s, curve_at(s.iterations, training_curve(open_run(run))))
    picks = evidence_picks(s.episodes, dyn=s.dyn)
    return candidate_rows(seed, s, sc, outcomes), measure_seed(seed, sc, picks, outcomes)


def check_design(p: Protocol, seed: int, iterations, kinds: tuple[str, ...]) -> None:
    """Refuse a seed whose candidates or kinds of shift are not the registered ones: a missing
    candidate would change the picks, a missing kind the average over kinds."""
    got = tuple(int(i) for i in iterations)
    if got != p.candidate_iterations:
        raise ValueError(
            f"seed {seed}: candidates at iterations {list(got)}, registered {list(p.candidate_iterations)}; "
            f"{_redo(p, seed)}"
        )
    if sorted(kinds) != sorted(p.kinds):
        raise ValueError(
            f"seed {seed}: margins for kinds {sorted(kinds)}, registered {sorted(p.kinds)}; {_redo(p, seed)}"
        )


def _redo(p: Protocol, seed: int) -> str:
    """How to run a seed's stage and margins again as registered (``run`` skips a judged seed)."""
    margins = p.run_dir(seed) / "postconv" / "sim2sim" / "stress" / "margins.json"
    return (
        f"remove {margins} and run `python -m postconv.study.confirm run --seeds {seed}` (the registered "
        "stage and margins; finished sample sets are reused)"
    )


def per_seed(measures: list[dict]) -> list[dict]:
    """Per seed and method: regret@1 (share of each kind's range) and Spearman, averaged over
    the kinds with equal weight (Spearman over the kinds where the margins differ)."""
    out = []
    keys = dict.fromkeys((r["seed"], r["method"]) for r in measures)
    for seed, method in keys:
        rs = [r for r in measures if r["seed"] == seed and r["method"] == method]
        rho = [r["spearman"] for r in rs if np.isfinite(r["spearman"])]
        out.append({"seed": seed, "method": method, "regret1": float(np.mean([r["regret1"] for r in rs])),
                    "spearman": float(np.mean(rho)) if rho else np.nan})  # fmt: skip
    return out


def sign_flip_p(d: np.ndarray) -> float:
    """One-sided exact p-value of mean(d) > 0 under sign flips (all 2^n of them)."""
    d = np.asarray(d, dtype=np.float64)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    return float(np.mean(signs @ d >= d.sum() - 1e-12))


def bootstrap_interval(d: np.ndarray, n_boot: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(d) over seeds resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = np.asarray(d)[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def compare(p: Protocol, table: list[dict]) -> list[dict]:
    """Each method against each baseline of ``p.against``, on both measures."""
    value = {(r["seed"], r["method"]): r for r in table}
    rows = []
    for method in p.methods:
        for base in p.against:
            for measure, sign in (("regret1", -1.0), ("spearman", 1.0)):
                d = np.array(
                    [sign * (value[(s, method)][measure] - value[(s, base)][measure]) for s in p.seeds]
                )
                if measure == "regret1" and not np.all(np.isfinite(d)):
                    raise ValueError(
                        f"{method} or {base}: a seed without a finite regret@1; every seed must count"
                    )
                # a seed whose margins tie in every kind has no Spearman (a rule has none at all):
                # such a seed leaves the Spearman test, and the row names it
                dropped = [s for s, x in zip(p.seeds, d, strict=True) if not np.isfinite(x)]
                d = d[np.isfinite(d)]
                if not d.size:
                    continue
                lo, hi = bootstrap_interval(d, p.n_boot)
                pv = sign_flip_p(d)
                role = "primary" if method == p.primary else "secondary"
                rows.append({"method": method, "role": role, "against": base, "measure": measure,
                             "improvement": float(d.mean()), "ci95": [lo, hi], "p": pv,
                             "seeds": int(d.size), "seeds_without": dropped, "seeds_better": int((d > 0).sum()),
                             "seeds_worse": int((d < 0).sum()),
                             "significant": bool(pv < p.alpha)})  # fmt: skip
    return rows


def verdict(p: Protocol, tests: list[dict]) -> dict:
    """The pre-registered decision: H1 holds when the primary's regret@1 beats the mean and the
    last checkpoint, each at p < alpha (an intersection-union test), and what the product does."""
    regret = {t["against"]: t for t in tests if t["method"] == p.primary and t["measure"] == "regret1"}
    beats = {base: regret[base]["p"] < p.alpha for base in p.against}
    if all(beats.values()):
        outcome = (
            f"H1 holds: {p.primary} becomes the stage's recommendation (its default scenarios gain +dyn)"
        )
    elif beats.get("last"):
        outcome = (
            f"the primary beats the last checkpoint but not the mean: {p.primary} becomes the stage's "
            "recommendation (its default scenarios gain +dyn), and the front page says it is not shown to "
            "beat the plain mean"
        )
    else:
        outcome = "the primary does not beat the last checkpoint: the stage recommends the last checkpoint"
    return {"primary": p.primary, "beats": beats, "h1": all(beats.values()), "outcome": outcome}


def summary(p: Protocol, table: list[dict]) -> list[dict]:
    """Per method (tested ones and baselines): mean regret@1 and Spearman over seeds, with intervals."""
    out = []
    for method in (*p.methods, *p.baselines):
        rs = [r for r in table if r["method"] == method]
        if not rs:  # a score the runs cannot give (e.g. no training curve): said by its absence
            continue
        regret = np.array([r["regret1"] for r in rs if np.isfinite(r["regret1"])])
        rho = np.array([r["spearman"] for r in rs if np.isfinite(r["spearman"])])
        # a baseline a seed cannot give (no training reward logged there) counts on fewer seeds, said so
        out.append({"method": method, "seeds": int(regret.size), "regret1": float(regret.mean()),
                    "regret1_ci95": list(bootstrap_interval(regret, p.n_boot)),
                    "spearman": float(rho.mean()) if rho.size else np.nan,
                    "spearman_ci95": list(bootstrap_interval(rho, p.n_boot)) if rho.size else [np.nan, np.nan]})  # fmt: skip
    return out


def markdown(
    p: Protocol, rows: list[dict], tests: list[dict], deviations: dict[int, str] | None = None
) -> str:
    """The result as the README shows it."""
    lines = [f"Seeds {', '.join(map(str, p.seeds))}; primary method `{p.primary}`.", "",
             "| method | seeds | regret@1 (95% CI) | Spearman (95% CI) |", "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lo, hi = r["regret1_ci95"]
        rlo, rhi = r["spearman_ci95"]
        lines.append(f"| `{r['method']}` | {r['seeds']} | {r['regret1']:.3f} ({lo:.3f} to {hi:.3f}) | "
                     f"{r['spearman']:+.2f} ({rlo:+.2f} to {rhi:+.2f}) |")  # fmt: skip
    lines += ["", "| method | role | against | measure | improvement (95% CI) | seeds better / worse / all | p (one-sided) |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for t in tests:
        lo, hi = t["ci95"]
        lines.append(f"| `{t['method']}` | {t['role']} | `{t['against']}` | {t['measure']} | {t['improvement']:+.3f} "
                     f"({lo:+.3f} to {hi:+.3f}) | {t['seeds_better']} / {t['seeds_worse']} / {t['seeds']}"
                     + (f" (without {', '.join(map(str, t['seeds_without']))})" if t["seeds_without"] else "")
                     + f" | {t['p']:.3f} |")  # fmt: skip
    if deviations:
        lines += ["", "Deviations from the pre-registration:", ""]
        lines += [
            f"- seed {seed}: {why}; the test runs over the other seeds" for seed, why in deviations.items()
        ]
    return "\n".join(lines) + "\n"


def analyze(
    p: Protocol,
    out_dir: Path = RESULTS,
    console: Console | None = None,
    unfinished: dict[int, str] | None = None,
) -> dict[str, Path]:
    """Write the per-candidate and per-seed CSVs of every judged seed; the test once all are in.

    ``unfinished``: seed -> why its run cannot finish (the pre-registration: "reported, not
    replaced"); the test then runs over the other seeds and the result names each as a deviation.
    Only a seed that is not judged can be given: a judged seed always counts."""
    console = console or Console()
    unfinished = dict(unfinished or {})
    if bad := sorted(set(unfinished) - set(p.seeds)):
        raise ValueError(f"seeds {bad} are not pre-registered ({list(p.seeds)})")
    if bad := sorted(s for s in unfinished if judged(p, s)):
        raise ValueError(f"seeds {bad} are judged: a judged seed counts; leave them out of --unfinished")
    done = [s for s in p.seeds if judged(p, s)]
    if len(done) + len(unfinished) == len(p.seeds) and 2.0 ** -len(done) >= p.alpha:
        # the smallest sign-flip p over n seeds is 2^-n: say so before scoring them
        raise ValueError(
            f"{len(done)} judged seeds cannot reach p < {p.alpha:g} (the smallest sign-flip p is "
            f"2^-{len(done)}); finish more seeds before the test"
        )
    candidates, measures = [], []
    for seed in done:
        c, m = seed_rows(p, seed)
        candidates += c
        measures += m
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"candidates": out_dir / "candidates.csv", "measures": out_dir / "measures.csv",
             "per_seed": out_dir / "per_seed.csv"}  # fmt: skip
    table = per_seed(measures)
    provenance = {seed: _read_provenance(p.run_dir(seed)) for seed in done}
    paths["provenance"] = out_dir / "provenance.json"
    paths["provenance"].write_text(json.dumps(provenance, indent=1))
    for name, rows in (("candidates", candidates), ("measures", measures), ("per_seed", table)):
        paths[name].write_text(to_csv(rows) if rows else "")
    if len(done) + len(unfinished) < len(p.seeds):
        console.print(f"{len(done)} of {len(p.seeds)} seeds judged ({done}); the test runs when all are in")
        return paths
    tested = replace(p, seeds=tuple(done))
    rows, tests = summary(tested, table), compare(tested, table)
    decision = verdict(tested, tests)
    paths["result"] = out_dir / "result.json"
    result = {
        "protocol": asdict(p),
        "unfinished": unfinished,
        "verdict": decision,
        "summary": rows,
        "tests": tests,
    }
    paths["result"].write_text(json.dumps(result, indent=1))
    paths["markdown"] = out_dir / "result.md"
    paths["markdown"].write_text(
        f"**{decision['outcome']}.**\n\n" + markdown(tested, rows, tests, unfinished)
    )
    _print(rows, tests, console)
    console.print(decision["outcome"])
    return paths


def _print(rows: list[dict], tests: list[dict], console: Console) -> None:
    table = Table(title="Confirmation: regret@1 (share of each kind's range) and Spearman, mean over seeds")
    for col in ("method", "regret@1", "95% CI", "Spearman", "95% CI"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["method"], f"{r['regret1']:.3f}", "{:.3f} to {:.3f}".format(*r["regret1_ci95"]),
                      f"{r['spearman']:+.2f}", "{:+.2f} to {:+.2f}".format(*r["spearman_ci95"]))  # fmt: skip
    console.print(table)
    tests_table = Table(title="One-sided sign-flip tests over seeds")
    for col in ("method", "against", "measure", "improvement", "95% CI", "better/worse", "p"):
        tests_table.add_column(col)
    for t in tests:
        tests_table.add_row(t["method"], t["against"], t["measure"], f"{t['improvement']:+.3f}",
                            "{:+.3f} to {:+.3f}".format(*t["ci95"]), f"{t['seeds_better']}/{t['seeds_worse']}",
                            f"{t['p']:.3f}")  # fmt: skip
    console.print(tests_table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m postconv.study.confirm", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and judge the seeds (resumable)")
    run.add_argument("--seeds", type=int, nargs="+", default=list(PROTOCOL.seeds))
    analyze_cmd = sub.add_parser("analyze", help="score the judged seeds; the test once all are in")
    analyze_cmd.add_argument(
        "--unfinished", nargs="+", default=[], metavar="SEED=WHY",
        help="a seed whose run cannot finish, and why: reported as a deviation, the test runs without it",
    )  # fmt: skip
    sub.add_parser("status", help="where each seed stands (training, ranking, margins)")
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "status":
        console.print(status_table(PROTOCOL))
        return 0
    if args.command == "run":
        unknown = sorted(set(args.seeds) - set(PROTOCOL.seeds))
        if unknown:
            parser.error(f"seeds {unknown} are not pre-registered ({list(PROTOCOL.seeds)})")
        for seed in args.seeds:
            run_seed(PROTOCOL, seed, console)
        return 0
    unfinished = {}
    for item in args.unfinished:
        seed, sep, why = item.partition("=")
        if not (sep and seed.strip().isdigit() and why.strip()):
            parser.error(
                f"--unfinished {item!r}: give SEED=WHY, e.g. 104='training diverged at iteration 1234'"
            )
        if int(seed) in unfinished:
            parser.error(f"--unfinished names seed {seed} twice; give each seed once, with its reason")
        unfinished[int(seed)] = why.strip()
    for path in analyze(PROTOCOL, console=console, unfinished=unfinished).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
