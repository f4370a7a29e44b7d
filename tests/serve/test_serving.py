"""Serving with honest logs: the policy's propensities, /v1/serve and /v1/feedback, and the log across restarts."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from adcraft.errors import InputError
from adcraft.serve.app import create_app
from adcraft.serve.decisions import DecisionStore
from adcraft.serve.impression_log import (
    ImpressionLog,
    counts_table,
    counts_upsert,
    elements_key,
    product_priors,
    served_rows,
    served_table,
)
from adcraft.serve.policy import ServingPolicy, ServingPolicyConfig, product_prior, thompson_propensities
from adcraft.serve.run_view import RunView
from adcraft.serve.state import NotFound, ServedRun

from .test_api import AUTH, make_config

# A count that lies within Z_TOLERANCE standard deviations of its expectation; for the handful of counts
# a test checks, a correct policy fails such a check with probability well under 1e-4 (and the seeds are fixed).
Z_TOLERANCE = 4.5


@pytest.fixture(scope="module")
def served(served_run, tmp_path_factory) -> ServedRun:
    return ServedRun(make_config(*served_run, tmp_path_factory.mktemp("db")))


def approve_two(store: DecisionStore, view: RunView) -> str:
    """Approve the first two proposals of the first product that differ from the creative it shows now (a kept
    rank 1 shows that one); returns the product id."""
    product_id = view.product_ids[0]
    current = view.current(product_id)
    others = [p for p in view.review(product_id).proposals if current is None or p.elements != current.elements]
    for proposal in others[:2]:
        store.record(product_id, proposal.creative_id, "approve")
    return product_id


@pytest.fixture
def log(served: ServedRun, tmp_path: Path):
    view = RunView.of_run(served.run_dir, served.market, served.reward)
    store = DecisionStore(f"sqlite:///{tmp_path / 'decisions.sqlite'}", view)
    yield ImpressionLog(store, ServingPolicy(ServingPolicyConfig(seed=5)))
    store.dispose()


# ---------------------------------------------------------------------------------------------- the policy


@pytest.mark.parametrize("clicks, impressions", [([0, 0, 0], [0, 0, 0]), ([30, 2, 0], [100, 100, 3]),
                                                 ([500, 0], [1000, 1000]), ([1, 2, 3, 4, 5], [9, 9, 9, 9, 9])])
def test_propensities_sum_to_one_and_keep_the_floor(clicks, impressions) -> None:
    config = ServingPolicyConfig(epsilon=0.05)
    p = thompson_propensities(clicks, impressions, config)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p >= config.epsilon / len(p) - 1e-15)
    assert np.array_equal(p, thompson_propensities(clicks, impressions, config))  # the same counts, the same p


def test_the_arm_that_clicks_more_gets_more_traffic_and_one_arm_gets_all() -> None:
    p = thompson_propensities([40, 5], [200, 200])
    assert p[0] > 0.9 and p[1] == pytest.approx(0.05 / 2 + 0.95 * (1 - (p[0] - 0.025) / 0.95))
    assert thompson_propensities([0], [0]).tolist() == [1.0]


def test_chosen_arms_follow_the_propensities() -> None:
    policy = ServingPolicy(ServingPolicyConfig(seed=11))
    clicks, impressions, draws = [12, 10, 1], [100, 100, 100], 20_000
    index, p = policy.choose(clicks, impressions)
    chosen = np.array([index] + [policy.draw(p) for _ in range(draws - 1)])
    for arm, share in enumerate(p):
        sigma = math.sqrt(draws * share * (1 - share))
        assert abs(np.sum(chosen == arm) - draws * share) < Z_TOLERANCE * sigma, (arm, share)


@pytest.mark.parametrize("change", [{"epsilon": 0.0}, {"epsilon": 1.5}, {"draws": 0}, {"prior_clicks": 0.0}])
def test_a_policy_config_without_a_floor_or_prior_is_refused(change) -> None:
    with pytest.raises(InputError):
        ServingPolicyConfig(**change)


# ---------------------------------------------------------------------------------------------- the log


def test_logged_propensities_are_the_returned_ones_and_the_choices_follow_them(log: ImpressionLog) -> None:
    product_id = approve_two(log.decisions, log.run)
    arms = log.arms(product_id)
    assert [a.source for a in arms] == ["current", "approved", "approved"]
    served = [log.serve(product_id, {"device": "mobile"}) for _ in range(200)]
    rows = served_rows(log.engine, log.run.run_id).set_index("impression_id")
    assert len(rows) == len(served)
    expected, variance = np.zeros(len(arms)), np.zeros(len(arms))
    ids = [a.creative_id for a in arms]
    for impression in served:
        p = np.array([s.propensity for s in impression.arms])
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and [s.arm.creative_id for s in impression.arms] == ids
        assert impression.propensity == p[ids.index(impression.arm.creative_id)]
        row = rows.loc[impression.impression_id]
        assert row["propensity"] == impression.propensity  # exactly what the answer said
        assert (row["creative_id"], row["arms"], row["context"]) == (impression.arm.creative_id, 3,
                                                                     '{"device": "mobile"}')
        expected += p
        variance += p * (1 - p)
    counts = np.array([sum(i.arm.creative_id == cid for i in served) for cid in ids])
    assert np.all(np.abs(counts - expected) < Z_TOLERANCE * np.sqrt(variance)), (counts, expected)


def test_clicks_move_the_posterior(log: ImpressionLog) -> None:
    product_id = approve_two(log.decisions, log.run)
    for _ in range(60):
        impression = log.serve(product_id)
        if impression.arm.source == "current":
            log.click(impression.impression_id)
    last = log.serve(product_id).arms
    assert last[0].clicks == last[0].impressions > 0 and last[1].clicks == 0
    assert last[0].propensity > max(s.propensity for s in last[1:])


def log_counts(log: ImpressionLog) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(product, run, elements_key) -> (impressions, clicks), counted from the served log itself."""
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    with log.engine.connect() as connection:
        for row in connection.execute(sa.select(served_table)):
            key = (row.product_id, row.run_id, elements_key(row.elements))
            n, c = out.get(key, (0, 0))
            out[key] = (n + 1, c + row.click)
    return out


def test_with_carry_over_a_later_run_starts_from_every_runs_counts_of_the_same_elements(served: ServedRun,
                                                                                         tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'decisions.sqlite'}"
    first_view = RunView.of_run(served.run_dir, served.market, served.reward)
    first = ImpressionLog(DecisionStore(url, first_view), ServingPolicy(ServingPolicyConfig(seed=5)))
    product_id = approve_two(first.decisions, first_view)
    for _ in range(60):
        impression = first.serve(product_id)
        if impression.arm.source == "current":
            first.click(impression.impression_id)
    before = {tuple(json.loads(key)): counts for (product, _, key), counts in log_counts(first).items()
              if product == product_id}
    first.decisions.dispose()
    for carry_over in (True, False):  # the run without carry over comes last and still sees none of the others
        view = copy.copy(first_view)
        view.run_id = f"a-later-run-{carry_over}"
        policy = ServingPolicy(ServingPolicyConfig(seed=5, carry_over=carry_over))
        later = ImpressionLog(DecisionStore(url, view), policy)
        approve_two(later.decisions, view)
        state = later.serve(product_id).arms
        later.decisions.dispose()
        counts = {s.arm.elements: (s.impressions, s.clicks) for s in state}
        assert len(counts) == 3
        if carry_over:
            assert counts == {elements: before.get(elements, (0, 0)) for elements in counts}
            assert sum(n for n, _ in counts.values()) == 60 and state[0].clicks == state[0].impressions > 0
            assert state[0].propensity > max(s.propensity for s in state[1:])
        else:
            assert all(n == c == 0 for n, c in counts.values())
            assert "counts across runs" not in later.policy.name


def table_counts(log: ImpressionLog) -> dict[tuple[str, str, str], tuple[int, int]]:
    with log.engine.connect() as connection:
        return {(r.product_id, r.run_id, r.elements): (r.impressions, r.clicks)
                for r in connection.execute(sa.select(counts_table))}


def test_the_counts_kept_with_the_log_equal_the_log_and_an_older_database_gets_them(log: ImpressionLog) -> None:
    product_id = approve_two(log.decisions, log.run)
    for i in range(80):
        impression = log.serve(product_id)
        if i % 3 == 0:
            log.click(impression.impression_id)
            log.click(impression.impression_id)  # a repeated click counts once
    assert table_counts(log) == log_counts(log) and sum(c for _, c in log_counts(log).values()) == 27
    with log.engine.begin() as connection:  # a database from before the counts
        connection.execute(sa.text(f"DROP TABLE {counts_table.name}"))
    reopened = ImpressionLog(log.decisions, log.policy)
    assert table_counts(reopened) == log_counts(reopened)
    impression = reopened.serve(product_id)
    reopened.click(impression.impression_id)
    assert table_counts(reopened) == log_counts(reopened) and sum(n for n, _ in log_counts(log).values()) == 81
    ImpressionLog(log.decisions, log.policy)  # a database that has them keeps them
    assert table_counts(reopened) == log_counts(reopened)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_an_arms_counts_are_added_in_one_statement_that_makes_the_row_when_missing(dialect: str) -> None:
    values = {"product_id": "p", "run_id": "r", "elements": '["a"]', "impressions": 1, "clicks": 0}
    statement = counts_upsert(dialect, values)
    module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
    sql = " ".join(str(statement.compile(dialect=module.dialect())).split())
    assert "ON CONFLICT (product_id, run_id, elements) DO UPDATE SET" in sql
    assert "impressions = (served_counts.impressions + excluded.impressions)" in sql
    assert "clicks = (served_counts.clicks + excluded.clicks)" in sql
    assert counts_upsert("mysql", values) is None  # other databases: an update, else an insert


def test_a_product_prior_keeps_the_weight_and_moves_the_mean_to_the_logged_ctr() -> None:
    config = ServingPolicyConfig()
    a, b = product_prior(40, 1000, config)
    assert a + b == pytest.approx(config.prior_clicks + config.prior_misses)
    assert a / (a + b) == pytest.approx(41 / 1002)
    assert min(product_prior(0, 10, config)) > 0 and min(product_prior(10, 10, config)) > 0  # a proper Beta


def test_under_a_prior_centred_on_a_low_ctr_an_arm_that_got_clicks_is_favoured_sooner() -> None:
    # three arms, one with 3 clicks in 30 impressions, two untried: a uniform prior expects the untried ones to
    # click half the time; a prior centred on a 4% CTR expects them to do as the product does
    config = ServingPolicyConfig(seed=3)
    uniform = thompson_propensities([3, 0, 0], [30, 0, 0], config)
    centred = thompson_propensities([3, 0, 0], [30, 0, 0], config, product_prior(40, 1000, config))
    assert uniform[0] < 0.2 and centred[0] > 0.5
    assert centred.sum() == pytest.approx(1.0) and centred.min() >= config.epsilon / 3 - 1e-12


def test_product_priors_follow_each_products_logged_ctr(served: ServedRun) -> None:
    market, config = served.market, ServingPolicyConfig()
    priors = product_priors(market, config)
    shown = market.impressions.merge(market.creatives, on="creative_id").groupby("product_id")["click"]
    assert set(priors) == set(shown.groups)
    for product, (clicks, n) in zip(shown.sum().index, zip(shown.sum(), shown.size())):
        assert priors[product] == pytest.approx(product_prior(int(clicks), int(n), config))
    assert product_priors(dataclasses.replace(market, impressions=None, creative_stats=None), config) == {}


def test_an_unknown_product_or_impression_is_not_found(log: ImpressionLog) -> None:
    with pytest.raises(NotFound, match="unknown product"):
        log.serve("no-such-product")
    with pytest.raises(NotFound, match="no served impression"):
        log.click("srv-nothing")


def test_a_product_with_no_current_and_no_approved_creative_has_nothing_to_serve(log: ImpressionLog) -> None:
    view = copy.copy(log.run)
    view._current = {}  # as for a product that was never logged
    bare = ImpressionLog(log.decisions, log.policy)
    bare.run = view
    product_id = view.product_ids[0]
    with pytest.raises(NotFound, match="nothing to serve"):
        bare.serve(product_id)
    approve_two(log.decisions, view)
    assert {a.source for a in bare.arms(product_id)} == {"approved"} and bare.serve(product_id).propensity > 0


# ---------------------------------------------------------------------------------------------- the API


def serve_client(served_run, served: ServedRun, tmp: Path) -> TestClient:
    return TestClient(create_app(make_config(*served_run, tmp), served), raise_server_exceptions=False)


def test_serve_and_feedback_over_http_survive_a_restart(served_run, served: ServedRun, tmp_path: Path) -> None:
    product_id = served.market.products["product_id"].iloc[0]
    with serve_client(served_run, served, tmp_path) as client:
        proposal = client.get("/v1/review/products", headers=AUTH).json()["products"][0]["proposals"][0]
        assert client.post("/v1/decisions", headers=AUTH, json={
            "product_id": product_id, "creative_id": proposal["creative_id"], "decision": "approve"}).status_code == 201
        answers = [client.post("/v1/serve", headers=AUTH, json={"product_id": product_id}) for _ in range(20)]
        assert all(a.status_code == 200 for a in answers)
        first = answers[0].json()
        assert sum(arm["propensity"] for arm in first["arms"]) == pytest.approx(1.0, abs=1e-12)
        assert first["propensity"] == next(a["propensity"] for a in first["arms"]
                                           if a["creative_id"] == first["creative_id"])
        assert client.get(first["image_url"], headers=AUTH).status_code == 200
        clicked = client.post("/v1/feedback", headers=AUTH, json={"impression_id": first["impression_id"]})
        assert clicked.status_code == 200 and clicked.json()["creative_id"] == first["creative_id"]
        again = client.post("/v1/feedback", headers=AUTH, json={"impression_id": first["impression_id"]})
        assert again.json()["clicked_at"] == clicked.json()["clicked_at"]  # a repeated click changes nothing
        unknown = client.post("/v1/feedback", headers=AUTH, json={"impression_id": "srv-0000"})
        assert unknown.status_code == 404 and "no served impression" in unknown.json()["message"]
        assert client.post("/v1/serve", headers=AUTH, json={"product_id": "nope"}).status_code == 404
        assert client.post("/v1/serve", json={"product_id": product_id}).status_code == 401
        assert client.post("/v1/serve", headers=AUTH, json={"product_id": product_id, "k": 1}).status_code == 422
    with serve_client(served_run, served, tmp_path) as restarted:  # a new app on the same database
        arms = restarted.post("/v1/serve", headers=AUTH, json={"product_id": product_id}).json()["arms"]
        assert sum(arm["impressions"] for arm in arms) == 20 and sum(arm["clicks"] for arm in arms) == 1
        late = restarted.post("/v1/feedback", headers=AUTH, json={"impression_id": answers[1].json()["impression_id"]})
        assert late.status_code == 200
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'decisions.sqlite'}")
    with engine.connect() as connection:
        total, clicks = connection.execute(sa.select(sa.func.count(), sa.func.sum(served_table.c.click))).one()
    engine.dispose()
    assert (total, clicks) == (21, 2)
