"""Card JSON: V1/V2/V3 read into a character's fields, and exported over the original."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from card_samples import V1_CARD, V2_CARD, V3_CARD

from personae.cards.card import build_card, read_card
from personae.cards.lorebook import Lorebook
from personae.errors import InvalidCard
from personae.services.macros import substitute

NOW = 1_800_000_000


def _export(document: dict[str, Any], spec: Any, **changes: Any) -> dict[str, Any]:
    fields = {**read_card(document).fields, **changes}
    return build_card(spec, fields, document, modified_at=NOW)


def test_v2_fields_map_to_the_character() -> None:
    card = read_card(V2_CARD)
    assert card.spec == "v2"
    fields = card.fields
    assert fields["name"] == "Captain Ilsa Varga"
    assert fields["first_message"] == V2_CARD["data"]["first_mes"]
    assert fields["example_dialogues"] == V2_CARD["data"]["mes_example"]
    assert fields["alternate_greetings"] == ["Hold the rail!", "First flight, {{user}}?"]
    assert fields["extensions"] == V2_CARD["data"]["extensions"]
    assert fields["creator"] == "ilsa-fan" and fields["character_version"] == "1.2"
    assert Lorebook.from_json(fields["character_book"]).token_budget == 200


def test_v3_adds_nickname_group_greetings_creation_date_and_assets() -> None:
    card = read_card(V3_CARD)
    assert card.spec == "v3"
    assert card.fields["nickname"] == "Cap"
    assert card.fields["group_only_greetings"] == ["Crew, to stations!"]
    assert card.fields["creation_date"] == 1_700_000_000
    assert [asset["name"] for asset in card.assets] == ["main", "happy"]


def test_a_v1_card_imports_from_its_flat_fields() -> None:
    card = read_card(V1_CARD)
    assert card.spec == "v1"
    assert card.fields["name"] == "Old Tom" and card.fields["first_message"] == "Who goes there?"


@pytest.mark.parametrize("document", [V2_CARD, V3_CARD])
@pytest.mark.parametrize("spec", ["v2", "v3"])
def test_an_unchanged_card_round_trips_to_equal_json(document: dict[str, Any], spec: str) -> None:
    exported = _export(document, spec)
    if spec == read_card(document).spec:
        assert exported == document
        assert list(exported["data"]) == list(document["data"])  # the key order too
    else:
        for key in ("x_unknown_data_key", "extensions", "character_book"):
            assert exported["data"][key] == document["data"][key]
        assert exported["spec"] == {"v2": "chara_card_v2", "v3": "chara_card_v3"}[spec]
        assert read_card(exported).fields == read_card(document).fields


def test_edited_fields_are_written_over_the_original_and_the_rest_kept() -> None:
    exported = _export(V3_CARD, "v3", description="New {{char}}.", tags=["sky"])
    data = exported["data"]
    assert data["description"] == "New {{char}}." and data["tags"] == ["sky"]
    assert data["x_unknown_data_key"] == V3_CARD["data"]["x_unknown_data_key"]
    assert data["creator_notes_multilingual"] == {"en": "Adventure", "fr": "Aventure"}
    assert data["modification_date"] == NOW
    assert exported["x_root_unknown"] == 42
    v2 = _export(V2_CARD, "v2", description="Changed.")
    assert v2["description"] == "Changed."  # the legacy root mirror follows the edit
    assert v2["x_exporter_root"] == V2_CARD["x_exporter_root"]


def test_an_edited_lorebook_is_written_in_the_card_format() -> None:
    book = copy.deepcopy(read_card(V2_CARD).fields["character_book"])
    book["entries"][1]["content"] = "Rewritten."
    exported = _export(V2_CARD, "v2", character_book=book)
    entries = exported["data"]["character_book"]["entries"]
    assert entries[1]["content"] == "Rewritten."
    assert entries[0]["extensions"] == {"selectiveLogic": 0, "probability": 100}
    removed = _export(V2_CARD, "v2", character_book=None)
    assert "character_book" not in removed["data"]


def test_a_v1_card_exports_as_a_full_v2_card_keeping_its_root_fields() -> None:
    exported = _export(V1_CARD, "v2")
    assert exported["spec"] == "chara_card_v2" and exported["data"]["name"] == "Old Tom"
    assert exported["first_mes"] == "Who goes there?"
    assert read_card(exported).fields == read_card(V1_CARD).fields


def test_a_character_without_a_card_exports_every_field() -> None:
    fields = {**read_card(V3_CARD).fields}
    v3 = build_card("v3", fields, None, modified_at=NOW)
    assert v3["spec"] == "chara_card_v3" and v3["spec_version"] == "3.0"
    assert v3["data"]["nickname"] == "Cap" and v3["data"]["modification_date"] == NOW
    v2 = build_card("v2", fields, None, modified_at=NOW)
    assert "nickname" not in v2["data"] and v2["data"]["first_mes"] == fields["first_message"]
    assert read_card(v3).fields == fields


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"hello": "world"}, "not a character card"),
        ({"spec": "chara_card_v9", "data": {}}, "Unknown card spec"),
        ({"spec": "chara_card_v2", "data": "x"}, '"data" object'),
        ({"spec": "lorebook_v3", "data": {}}, "lorebook, not a character card"),
        ({"spec": "chara_card_v2", "data": {"name": ""}}, "needs a name"),
        ({"spec": "chara_card_v2", "data": {"name": 5}}, "data.name: must be a string"),
        ({"spec": "chara_card_v2", "data": {"name": "a", "tags": "x"}}, "tags: must be a list"),
        (
            {"spec": "chara_card_v2", "data": {"name": "a", "alternate_greetings": [1]}},
            "alternate_greetings: must be a list of strings",
        ),
        ({"spec": "chara_card_v2", "data": {"name": "a", "extensions": []}}, "extensions"),
        (
            {"spec": "chara_card_v2", "data": {"name": "a", "description": "x" * 32_001}},
            "longer than 32000",
        ),
        ({"spec": "chara_card_v3", "data": {"name": "a", "assets": {}}}, "assets: must be a list"),
        (
            {"spec": "chara_card_v2", "data": {"name": "a", "character_book": {"entries": [1]}}},
            r"character_book.entries\[0\]: must be an object",
        ),
    ],
)
def test_cards_with_wrong_types_are_refused_naming_the_field(document: Any, message: str) -> None:
    with pytest.raises(InvalidCard, match=message):
        read_card(document)


@pytest.mark.parametrize(
    ("text", "message"), [("a\x00b", "NUL"), ("a\ud800b", "not valid Unicode")]
)
def test_text_a_database_cannot_store_is_refused(text: str, message: str) -> None:
    for data in ({"name": "a", "scenario": text}, {"name": "a", "tags": [text]}):
        with pytest.raises(InvalidCard, match=message):
            read_card({"spec": "chara_card_v2", "data": data})


def test_null_fields_count_as_empty() -> None:
    card = read_card({"spec": "chara_card_v2", "data": {"name": "a", "tags": None}})
    assert card.fields["tags"] == [] and card.fields["description"] == ""


def test_card_macros_are_replaced_case_insensitively() -> None:
    data = V2_CARD["data"]
    assert substitute(data["description"], char="Ilsa", user="Sam") == "Ilsa commands the Kestrel."
    assert substitute(data["scenario"], char="Ilsa", user="Sam") == (
        "Sam buys passage on the Ilsa's ship."
    )
    assert substitute(data["first_mes"], char="Ilsa", user="Sam").endswith("aboard, Sam.")
