"""The market format's rules: a good market validates clean, every broken rule is reported with
its file, rows, column and rule, and all of them are reported at once."""

from __future__ import annotations

import pytest

from adcraft.errors import InputError
from adcraft.market import (
    ImageLimits,
    MarketValidationError,
    Problem,
    load_market,
    validate_market,
)
from tests.market.market_cases import CASES, Case
from tests.market.market_drafts import SLOTS


def _matches(problems: list[Problem], file: str, column: str | None, rule: str) -> bool:
    return any(p.file == file and p.column == column and rule in p.rule for p in problems)


@pytest.mark.parametrize("table_format", ["parquet", "csv"])
def test_valid_market_with_every_optional_table_validates_clean(make_draft, table_format):
    root = make_draft(table_format=table_format).write()
    assert validate_market(root) == []
    market = load_market(root)
    assert market.creatives is not None and market.impressions is not None
    assert market.creative_stats is not None and market.demand is not None


def test_market_with_required_tables_and_columns_only_validates_clean(make_draft):
    draft = make_draft()
    for name in ("creatives", "impressions", "creative_stats", "demand"):
        draft.tables[name] = None
    draft.tables["products"] = draft.tables["products"].drop(columns=["price", "attributes"])
    elements = draft.tables["elements"]
    draft.tables["elements"] = elements[elements["slot"] != "product_image"].drop(
        columns=["image"])
    draft.config["slots"] = SLOTS[1:]
    root = draft.write()
    assert validate_market(root) == []
    market = load_market(root)
    assert market.creatives is None and market.demand is None
    assert market.products["price"].isna().all() and market.products["attributes"].isna().all()
    assert market.elements["image"].isna().all()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_broken_market_is_reported(make_draft, case: Case):
    draft = make_draft(table_format=case.table_format)
    case.change(draft)
    root = draft.write()
    if case.after is not None:
        case.after(draft)
    problems = validate_market(root)
    assert _matches(problems, case.file, case.column, case.rule), "\n".join(map(str, problems))


def test_load_market_refuses_with_the_problems_validate_reports(make_draft):
    draft = make_draft()
    draft.set("creative_stats", "clicks", 0, 101)
    draft.set("products", "image", 0, "/etc/hostname")
    root = draft.write()
    with pytest.raises(MarketValidationError) as refused:
        load_market(root)
    assert refused.value.problems == validate_market(root)
    assert len(refused.value.problems) == 2
    assert "creative_stats.parquet row 0: column clicks: clicks must be <= impressions" in str(
        refused.value)


def test_every_broken_rule_is_reported_at_once(make_draft):
    draft = make_draft()
    draft.set("impressions", "click", 0, 3)
    draft.set("creative_stats", "clicks", 1, 500)
    draft.set("demand", "product_id", 0, "nope")
    draft.set("products", "image", 2, "../x.png")
    problems = validate_market(draft.write())
    assert [(p.file, p.column) for p in problems] == [
        ("impressions.parquet", "click"),
        ("creative_stats.parquet", "clicks"),
        ("demand.parquet", "product_id"),
        ("products.parquet", "image"),
    ]
    assert [p.rows for p in problems] == [(0,), (1,), (0,), (2,)]


def test_problem_reads_file_rows_column_rule():
    problem = Problem("creative_stats.parquet", (3, 7), "clicks", "clicks must be <= impressions")
    assert str(problem) == ("creative_stats.parquet rows 3, 7: column clicks: "
                            "clicks must be <= impressions")
    missing = Problem("market.json", (), None, "file is missing")
    assert str(missing) == "market.json: file is missing"
    many = Problem.at_rows("impressions.csv", range(25), "click", "must be 0 or 1")
    assert len(many.rows) == 10 and many.more_rows == 15
    assert "rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 15 more" in str(many)


def test_error_message_lists_the_first_problems_and_counts_the_rest():
    problems = [Problem("products.csv", (row,), "title", "must not be empty") for row in range(30)]
    error = MarketValidationError(problems, where="m")
    assert isinstance(error, InputError)
    message = str(error)
    assert "30 rules" in message and "products.csv row 19:" in message
    assert "products.csv row 20:" not in message and "and 10 more" in message


def test_missing_market_folder_is_a_problem_not_an_exception(tmp_path):
    problems = validate_market(tmp_path / "absent")
    assert len(problems) == 1 and "does not exist" in problems[0].rule


def test_check_images_false_skips_decoding_but_not_existence(make_draft):
    draft = make_draft()
    draft.file("images/fake.png", b"not an image")
    draft.set("products", "image", 0, "images/fake.png")
    draft.set("products", "image", 1, "images/absent.png")
    root = draft.write()
    problems = validate_market(root, check_images=False)
    assert [p.rule for p in problems] == ["images/absent.png: image file does not exist"]


def test_pixel_limit_is_configurable(make_draft):
    root = make_draft().write()
    problems = validate_market(root, limits=ImageLimits(max_pixels=40))
    over = [p for p in problems if "over the limit of 40 pixels" in p.rule]
    assert {p.file for p in over} == {"products.parquet", "elements.parquet", "creatives.parquet"}


def test_load_without_validation_skips_rules_but_not_types(make_draft):
    draft = make_draft()
    draft.set("impressions", "click", 0, 7)
    root = draft.write()
    assert load_market(root, validate=False).impressions["click"].tolist()[0] == 7
    draft.tables["products"] = draft.tables["products"].drop(columns=["title"])
    draft.write()
    with pytest.raises(MarketValidationError, match="column title: required column is missing"):
        load_market(root, validate=False)
