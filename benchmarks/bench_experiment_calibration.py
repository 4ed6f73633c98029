"""Calibration of the experiment analysis: A/A false-positive rate, p-value uniformity, and the
detection rate of a known injected effect against the planned power (docs/experiments.md).

For each plan, `runs` A/A experiments and `runs` with the plan's minimum effect injected, each
drawn with its own seed from the simulated world's users (simulator/outcomes.py) at the planned
sample size and analysed by `analyse`, the function the report calls. Prints a table; with
--plots-dir, draws the A/A p-value histogram and the detection rates, and writes one example
report (simulated, peeking at half the plan) so the docs show what the report draws.

`python -m benchmarks bench_experiment_calibration` or
`.venv/bin/python -m benchmarks.bench_experiment_calibration --runs 1000 --plots-dir docs/img`
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.experiment_calibration import Calibration, calibrate
from jobs.online.experiment_analysis import Plan
from simulator.outcomes import UserPool
from simulator.world import Scale, World

ALPHA = 0.05
PLANS = (Plan(0.3, 0.05, ALPHA, 0.8), Plan(0.3, 0.03, ALPHA, 0.8), Plan(0.3, 0.05, ALPHA, 0.9))


def row(plan: Plan, label: str, result: Calibration, target: float, seconds: float) -> str:
    rate, low, high = result.rate_interval(ALPHA)
    ok = "yes" if low <= target <= high else "NO"
    ks = f"{result.ks_uniform():.3f}" if result.effect == 0 else "-"
    return (
        f"| {plan.min_effect:+.2f} | {plan.power:.1f} | {result.planned_users[0]:>5} | {label} "
        f"| {result.runs} | {rate:.3f} [{low:.3f}, {high:.3f}] | {target:.2f} | {ok} | {ks} "
        f"| {result.sequential_rate(ALPHA):.3f} | {seconds:.0f} |"
    )


def plots(results: list[tuple[Plan, Calibration, Calibration]], out: Path) -> None:
    """experiment-calibration.png: A/A p-value histogram and detection rate vs planned power."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan, aa, _ = results[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].hist(aa.p_values, bins=20, range=(0, 1), color="steelblue", edgecolor="white")
    axes[0].axhline(aa.runs / 20, color="red", linestyle="--", label="uniform")
    axes[0].set_title(f"A/A p-values, {aa.runs} runs, {aa.planned_users[0]} users per arm")
    axes[0].legend()
    labels, rates, errs, targets = [], [], [], []
    for plan, aa, effect in results:
        for name, result, target in (("A/A", aa, ALPHA), ("effect", effect, plan.power)):
            rate, low, high = result.rate_interval(ALPHA)
            labels.append(f"{name}\n{plan.min_effect:+.2f}/{plan.power:.1f}")
            rates.append(rate)
            errs.append((rate - low, high - rate))
            targets.append(target)
    x = range(len(labels))
    axes[1].bar(x, rates, yerr=list(zip(*errs, strict=True)), capsize=5, color="gray")
    axes[1].scatter(x, targets, color="red", zorder=3, label="alpha / planned power")
    axes[1].set_xticks(list(x), labels, fontsize=8)
    axes[1].set_title("rejection rate (95% Clopper-Pearson) vs target")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "experiment-calibration.png", dpi=90)
    plt.close(fig)


def example_report(pool: UserPool, plan: Plan, out: Path) -> Path:
    """One simulated experiment read at half its plan, written as the report writes it."""
    from datetime import UTC, datetime

    from jobs.online.experiment_analysis import analyse, sample_size
    from jobs.online.experiment_report import write_report
    from jobs.publish.experiments import VariantSpec

    n = sample_size(plan)[0]
    shift = pool.shift_for(plan.min_effect)
    outcomes = pool.draw({"a": (n // 2, 0.0), "b": (n // 2, shift)}, seed=424242)
    analysis = analyse(outcomes, plan, {"a": n, "b": n}, "a")
    exp = {
        "experiment_id": "simulated-example",
        "active": True,
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
        "ended_at": None,
        "variants": [VariantSpec("a", "sim-control", 0.5), VariantSpec("b", "sim-better", 0.5)],
    }
    return write_report(exp, analysis, {"span": None, "dropped_users": 0}, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="analyses per plan and arm setup")
    parser.add_argument("--plots-dir", type=Path)
    parser.add_argument("--example-dir", type=Path, help="example report (default: plots dir)")
    args = parser.parse_args(argv)
    pool = UserPool.from_world(World(Scale(users=40_000, movies=1_000), seed=11), base_rate=0.3)
    print(f"world: 40,000 users; expected user hit rate {pool.expected_rate():.3f}; alpha {ALPHA}")
    print(
        "| effect | power | users/arm | runs of | n | rejection rate [95% CI] | target | "
        "target in CI | KS p | mSPRT rate | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for i, plan in enumerate(PLANS):
        start = time.perf_counter()
        aa = calibrate(pool, plan, args.runs, 0.0, first_seed=i * 1_000_000)
        middle = time.perf_counter()
        print(row(plan, "A/A", aa, ALPHA, middle - start), flush=True)
        effect = calibrate(
            pool, plan, args.runs, plan.min_effect, first_seed=i * 1_000_000 + 500_000
        )
        seconds = time.perf_counter() - middle
        print(row(plan, "effect", effect, plan.power, seconds), flush=True)
        results.append((plan, aa, effect))
    if args.plots_dir:
        args.plots_dir.mkdir(parents=True, exist_ok=True)
        plots(results, args.plots_dir)
        example = example_report(pool, PLANS[0], args.example_dir or args.plots_dir)
        print(f"plots in {args.plots_dir}; example report in {example}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
