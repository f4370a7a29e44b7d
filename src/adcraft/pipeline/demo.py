"""The demo job: the main job (``optimize``) on the embedded default market, checked against its truth.

``run_demo`` simulates the default market (120 products, 150k logged impressions), runs ``optimize`` on
it exactly as on a user's market (validation included; the truth is not shown to it), then, because this
market is simulated, serves the proposals and the logging policy to simulated traffic (an A/B test scored
by the simulator's true click model) so the off-policy estimate can be read beside the true lift.

The A/B test is the one the run's launch plan asks for: ``ab_test_size`` takes its impressions per arm (the
sample that detects the conservative lift at the plan's alpha and power), clipped to ``ab_bounds``; a test
smaller than the plan could not resolve the lift it is there to check. ``ab_impressions`` fixes the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adcraft.atomic import write_json
from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.evaluate.abtest import ABTestConfig, ABTestResult, run_ab_test
from adcraft.market import load_market
from adcraft.market.extra import read_extra_elements, with_extra_elements
from adcraft.pipeline.optimize import OptimizeConfig, OptimizeResult, RunRecord, optimize
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo job."""

    out: Path = Path("out")
    seed: int = 0
    n_products: int = 120
    n_impressions: int = 150_000
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    ab_impressions: int | None = None  # per arm; None: the launch plan's size, clipped to ab_bounds
    ab_bounds: tuple[int, int] = (100_000, 20_000_000)

    def __post_init__(self) -> None:
        check_config(self)
        low, high = self.ab_bounds
        if not 1 <= low <= high:
            raise InputError(f"ab_bounds must be (low, high) with 1 <= low <= high, got {self.ab_bounds}")
        if self.ab_impressions is not None and self.ab_impressions < 1:
            raise InputError(f"ab_impressions (per arm) must be at least 1, got {self.ab_impressions}")


@dataclass(frozen=True)
class DemoResult:
    market_dir: Path
    truth_dir: Path
    run: OptimizeResult
    report: Path
    ab_test: ABTestResult


def ab_test_size(config: DemoConfig, record: RunRecord) -> int:
    """Impressions per arm of the demo's A/B test: ``config.ab_impressions`` when set, else the launch plan's
    ``impressions_per_arm`` in run.json's evidence clipped to ``config.ab_bounds`` (the low bound when the plan
    has no positive lift to confirm or the run has no evidence)."""
    if config.ab_impressions is not None:
        return config.ab_impressions
    low, high = config.ab_bounds
    plan = record.evidence.detail.get("launch_plan") or {}
    needed = plan.get("impressions_per_arm")
    if isinstance(needed, bool) or not isinstance(needed, (int, float)) or not needed > 0:
        return low
    return int(min(max(int(needed), low), high))


def run_demo(config: DemoConfig, progress: bool = False) -> DemoResult:
    """Simulate the default market, optimize it, and A/B test the proposals on simulated traffic."""
    out = Path(config.out)
    simulated = simulate_market(
        SimulatorConfig(seed=config.seed, n_products=config.n_products, n_impressions=config.n_impressions),
        out / "market",
        out / "market-truth",
        progress=progress,
        overwrite=True,
    )
    result = optimize(simulated.market_dir, out / "run", config.optimize, progress=progress)
    market = load_market(simulated.market_dir)
    new_elements = out / "run" / "elements.parquet"
    truth = GroundTruth.load(simulated.truth_dir)
    if new_elements.is_file():
        extra = read_extra_elements(new_elements, market)
        market, truth = with_extra_elements(market, extra), truth.with_elements(extra)
    ab = run_ab_test(market, truth, result.proposals, out / "run",
                     config=ABTestConfig(impressions=ab_test_size(config, result.record), seed=config.seed))
    write_json(out / "run" / "abtest.json", ab.to_json())
    return DemoResult(simulated.market_dir, simulated.truth_dir, result, out / "run" / "report.html", ab)
