"""The appliance use cases: catalogs added and forgotten, appliances listed with what is pulled, backend choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmlog.app import appliances
from vmlog.demo import catalog_document
from vmlog.errors import NotFound
from vmlog.workspace import Workspace

META = {"version": "1.0", "min_memory_mib": 256, "size": 1234, "sha256": "ab" * 32}


def test_a_catalog_is_recorded_listed_and_forgotten(vmlog_home: Path, tmp_path: Path) -> None:
    ctx = Workspace.default()
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog_document("http://127.0.0.1:1/x.raw", META)))
    entry = appliances.add_catalog(str(path), name="mine", ctx=ctx)
    assert [e.name for e in appliances.list_catalogs(ctx=ctx)] == [entry.name] == ["mine"]
    listing = appliances.list_appliances("served by", ctx=ctx)
    (row,) = listing.appliances
    assert row.appliance.catalog == "mine" and row.pulled == [] and not row.stored
    assert listing.to_dict()[0]["pulled"] == [] and listing.problems == []
    found = appliances.find_appliance(appliances.TEST_APPLIANCE, ctx=ctx)
    assert found.version.version == "1.0" and found.to_dict()["resolved"]["version"] == "1.0"
    appliances.remove_catalog("mine", ctx=ctx)
    assert appliances.list_catalogs(ctx=ctx) == []
    with pytest.raises(NotFound):
        appliances.remove_catalog("mine", ctx=ctx)


def test_an_unreadable_catalog_is_a_problem_not_a_failure(vmlog_home: Path, tmp_path: Path) -> None:
    ctx = Workspace.default()
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog_document("http://127.0.0.1:1/x.raw", META)))
    appliances.add_catalog(str(path), name="gone", ctx=ctx)
    path.unlink()
    listing = appliances.list_appliances(ctx=ctx)
    assert {row.appliance.name for row in listing.appliances} >= {"cernvm", appliances.TEST_APPLIANCE}
    assert len(listing.problems) == 1 and "gone" in listing.problems[0]


def test_an_empty_store_lists_no_images(vmlog_home: Path) -> None:
    assert appliances.list_images(ctx=Workspace.default()) == []


def test_an_unknown_backend_is_refused_with_the_fix_before_anything_is_pulled(vmlog_home: Path) -> None:
    with pytest.raises(Exception) as caught:
        appliances.choose_backend("nosuch")
    assert getattr(caught.value, "fix", None)
    assert not any(Path(vmlog_home).rglob("*.part"))


def test_every_backend_is_offered_with_its_title() -> None:
    keys = [key for _title, key in appliances.backend_choices()]
    assert "kvm" in keys and all(title for title, _key in appliances.backend_choices())
