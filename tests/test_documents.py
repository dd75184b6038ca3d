"""Pure unit tests of reading and writing pipeline documents (spec section 4)."""

from __future__ import annotations

import pytest

from pipeline_secrets.documents import MAX_EXPANDED_NODES, dump_document, load_document
from pipeline_secrets.errors import DocumentError


def alias_bomb(levels: int, width: int) -> str:
    """A billion-laughs document: each level is a list of `width` aliases of the level below."""
    lines = ["a0: &a0 [lol]"]
    for level in range(1, levels + 1):
        aliases = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


# --- load_document ----------------------------------------------------------------------------


def test_load_yaml():
    doc = load_document("jobs:\n- name: build\n  plan:\n  - get: repo\n    trigger: true\nn: 42\n")
    assert doc == {"jobs": [{"name": "build", "plan": [{"get": "repo", "trigger": True}]}], "n": 42}


def test_load_json():
    doc = load_document('{"b": [1, 2.5, null, true], "a": {"x": "((var))"}}')
    assert doc == {"b": [1, 2.5, None, True], "a": {"x": "((var))"}}
    assert list(doc) == ["b", "a"]


def test_load_keeps_key_order():
    assert list(load_document("z: 1\na: 2\nm: 3\n")) == ["z", "a", "m"]


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_document_is_none(text):
    assert load_document(text) is None


@pytest.mark.parametrize("text", ["a: [", "a: b: c", "key: 'unterminated", "- a\nb: c", "\tkey: value"])
def test_invalid_yaml(text):
    with pytest.raises(DocumentError) as info:
        load_document(text)
    assert str(info.value).startswith("invalid YAML")
    assert info.value.exit_status == 2


@pytest.mark.parametrize("text", ["a: 1\n---\nb: 2\n", "---\na: 1\n---\n- x\n"])
def test_multiple_documents_refused(text):
    with pytest.raises(DocumentError, match="single document"):
        load_document(text)


@pytest.mark.parametrize(
    "text",
    [
        "d: 2024-13-45\n",  # resolves as a date, but there is no month 13
        "n: !!int abc\n",
        "t: !!timestamp foo\n",
        "x: !!python/object/apply:os.system [echo]\n",
    ],
)
def test_values_that_cannot_be_constructed_are_document_errors(text):
    with pytest.raises(DocumentError, match="^invalid YAML"):
        load_document(text)


def test_alias_bomb_refused():
    # 10 levels of 10 aliases: 10**10 nodes once expanded. Without the size check, constructing
    # is cheap but anything walking the result (interpolation, dumping) would never finish.
    with pytest.raises(DocumentError, match="too large"):
        load_document(alias_bomb(10, 10))


def test_alias_bomb_nine_by_nine_refused():
    with pytest.raises(DocumentError, match="too large"):
        load_document(alias_bomb(9, 9))


def test_size_limit_is_on_the_expanded_size():
    text = alias_bomb(3, 10)  # about 2,350 nodes expanded, from a few dozen written
    assert load_document(text)["a3"][0][0][0] == ["lol"]
    with pytest.raises(DocumentError, match="more than 500 nodes"):
        load_document(text, max_nodes=500)
    assert MAX_EXPANDED_NODES == 1_000_000


def test_recursive_alias_refused():
    with pytest.raises(DocumentError, match="recursive alias"):
        load_document("a: &a [*a]\n")
    with pytest.raises(DocumentError, match="recursive alias"):
        load_document("&m {k: *m}\n")


def test_legitimate_anchors_and_aliases():
    doc = load_document(
        "defaults: &defaults\n  image: alpine\n  tags: [x]\n"
        "one: *defaults\n"
        "two: [*defaults, *defaults]\n"
    )
    assert doc["one"] == {"image": "alpine", "tags": ["x"]}
    assert doc["two"] == [doc["one"], doc["one"]]


def test_merge_keys():
    doc = load_document(
        "base: &base\n  image: alpine\n  retries: 1\n"
        "extra: &extra\n  privileged: true\n"
        "task:\n  <<: [*base, *extra]\n  retries: 3\n"
        "other:\n  <<: *base\n"
    )
    assert doc["task"] == {"image": "alpine", "retries": 3, "privileged": True}
    assert doc["other"] == {"image": "alpine", "retries": 1}
    assert "<<" not in doc["task"]


def test_unicode_loaded():
    assert load_document("name: café ☕\n日本: 語\n") == {"name": "café ☕", "日本": "語"}


# --- dump_document ----------------------------------------------------------------------------


def test_dump_keeps_key_order():
    doc = {"zeta": 1, "alpha": {"y": 2, "b": 3}, "mid": [1, 2]}
    text = dump_document(doc)
    assert text.index("zeta") < text.index("alpha") < text.index("y:") < text.index("b:") < text.index("mid")
    assert list(load_document(text)) == ["zeta", "alpha", "mid"]
    assert list(load_document(text)["alpha"]) == ["y", "b"]


def test_dump_writes_no_anchors_for_shared_objects():
    shared = {"image": "alpine", "tags": ["x", "y"]}
    text = dump_document({"a": shared, "b": shared, "c": [shared["tags"], shared["tags"]]})
    assert "&" not in text
    assert "*" not in text
    assert text.count("image: alpine") == 2
    assert load_document(text) == {"a": shared, "b": shared, "c": [["x", "y"], ["x", "y"]]}


def test_dump_multiline_strings_as_literal_blocks():
    key = "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\n"
    text = dump_document({"private_key": key, "single": "one line"})
    assert "private_key: |\n" in text
    assert "  abc\n  def\n" in text
    assert "single: one line\n" in text
    assert load_document(text)["private_key"] == key


def test_dump_multiline_without_trailing_newline_round_trips():
    text = dump_document({"k": "a\nb"})
    assert "k: |-\n" in text
    assert load_document(text) == {"k": "a\nb"}


def test_dump_keeps_unicode():
    text = dump_document({"name": "café ☕", "日本": "語"})
    assert "café ☕" in text
    assert "日本: 語" in text
    assert "\\u" not in text and "\\x" not in text


def test_dump_long_lines_not_folded():
    long = "word " * 100
    text = dump_document({"k": long.strip()})
    assert len(text.splitlines()) == 1


@pytest.mark.parametrize(
    "doc",
    [
        {"a": "yes", "b": "no", "c": "123", "d": "null", "e": "", "f": "((var))", "g": "- item", "h": "a: b"},
        {"n": 12345678901234567890123, "f": 1.5, "t": True, "none": None, "list": [], "map": {}},
        [{"name": "x", "plan": [{"get": "repo"}]}, "str", 3],
        "just a string",
        {"multi": "line1\nline2\n", "nested": {"deep": ["a\nb", {"c": "d\n"}]}},
    ],
)
def test_round_trip(doc):
    assert load_document(dump_document(doc)) == doc
