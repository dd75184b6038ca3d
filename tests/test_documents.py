"""Pure unit tests of reading and writing pipeline documents (spec section 4)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from pipeline_secrets.errors import DocumentError, LimitError
from pipeline_secrets.pure.documents import (
    DocumentLimits,
    dump_document,
    dump_json_document,
    has_lone_surrogates,
    load_document,
    load_json_document,
)


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
    with pytest.raises(LimitError, match="more than 500 nodes"):
        load_document(text, DocumentLimits(max_nodes=500))
    assert DocumentLimits().max_nodes == 250_000


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


# --- the budget (issue 8: checked while parsing, before large allocations) ----------------------


def test_aliases_of_a_long_string_count_their_bytes_each_time():
    # Defect 1: 1 MB behind an anchor, 5,000 aliases: small to send, 5 GB to interpolate.
    text = 's: &x "' + "A" * 1_000_000 + '"\nl: [' + ", ".join(["*x"] * 5000) + "]\n"
    with pytest.raises(LimitError, match="expands to more than 33,554,432 bytes .*--max-expanded-bytes"):
        load_document(text)
    assert len(load_document(text, DocumentLimits(max_expanded_bytes=6 * 10**9))["l"]) == 5000


def test_a_long_plain_list_is_refused_at_the_node_limit():
    # Defect 7: [a, a, ...] of 5M items under the 10 MB cap was built whole before the check.
    text = "[" + ", ".join(["a"] * 300_000) + "]"
    with pytest.raises(LimitError, match="more than 250,000 nodes .*--max-document-nodes"):
        load_document(text)


def test_depth_limit_counts_nesting_and_aliases():
    with pytest.raises(LimitError, match="nested more than 64 levels .*--max-document-depth"):
        load_document("[" * 65 + "]" * 65)
    assert load_document("[" * 64 + "]" * 64) is not None
    deep = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n"
    with pytest.raises(LimitError, match="nested more than 64"):
        load_document(deep)
    # Far deeper than Python's recursion limit: refused (by us or by libyaml), not a RecursionError.
    with pytest.raises(DocumentError, match="nest"):
        load_document("[" * 100_000 + "]" * 100_000, DocumentLimits(max_nodes=10**6))


def test_vars_limit_counts_distinct_placeholders():
    text = "\n".join(f"k{i}: ((v{i}))" for i in range(501))
    with pytest.raises(LimitError, match="more than 500 distinct vars .*--max-document-vars"):
        load_document(text)
    same = "\n".join(f"k{i}: ((v)) and ((w))" for i in range(2000))
    assert len(load_document(same)) == 2000


def test_size_limit_is_on_the_text():
    with pytest.raises(LimitError, match="more than 100 bytes .*--max-document-bytes"):
        load_document("a: " + "b" * 100, DocumentLimits(max_bytes=100))


def test_limit_errors_are_document_errors_with_exit_status_2():
    assert issubclass(LimitError, DocumentError)
    assert LimitError.exit_status == 2


def test_duplicate_anchor_and_undefined_alias_are_invalid():
    with pytest.raises(DocumentError, match="duplicate anchor"):
        load_document("a: &x 1\nb: &x 2\n")
    with pytest.raises(DocumentError, match="undefined alias"):
        load_document("a: *nope\n")


def test_collection_keys_and_unsupported_tags_are_invalid():
    with pytest.raises(DocumentError, match="mapping key"):
        load_document("? [a, b]\n: c\n")
    with pytest.raises(DocumentError, match="unsupported tag"):
        load_document("!!omap [a: 1]\n")
    with pytest.raises(DocumentError, match="invalid YAML"):
        load_document("a: !custom x\n")


def test_merge_keys_follow_the_spec_earlier_mapping_wins():
    doc = load_document("a: &a {k: from-a, x: 1}\nb: &b {k: from-b, y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n")
    assert doc["c"] == {"k": "from-a", "x": 1, "y": 2, "z": 3}
    assert load_document("a: &a {k: 1}\nc:\n  k: 2\n  <<: *a\n")["c"] == {"k": 2}
    with pytest.raises(DocumentError, match="merge"):
        load_document("c:\n  <<: [1, 2]\n")


def test_equals_sign_as_a_key_is_a_string():
    assert load_document("=: 1\n") == {"=": 1}


# --- JSON within the budget -----------------------------------------------------------------------


def test_json_document_within_budget():
    assert load_json_document('{"a": [1, "((x))", {"b": null}], "c": true}') == {
        "a": [1, "((x))", {"b": None}], "c": True}


def test_json_nodes_depth_vars_and_bytes_are_metered():
    with pytest.raises(LimitError, match="nodes"):
        load_json_document("[" + ",".join(["1"] * 300_000) + "]")
    with pytest.raises(LimitError, match="nested more than 64"):
        load_json_document("[" * 65 + "]" * 65)
    with pytest.raises(LimitError, match="nested more than 64"):
        load_json_document("[" * 200_000 + "]" * 200_000)
    with pytest.raises(LimitError, match="distinct vars"):
        load_json_document("[" + ",".join(f'"((v{i}))"' for i in range(501)) + "]")
    with pytest.raises(LimitError, match="bytes"):
        load_json_document('"' + "a" * 200 + '"', DocumentLimits(max_bytes=100))


@pytest.mark.parametrize("text", ['"\\ud800"', '{"a": ["x\\uDFFF"]}', '{"\\ud83d": 1}'])
def test_json_lone_surrogates_are_invalid(text):
    with pytest.raises(DocumentError, match="lone UTF-16 surrogate"):
        load_json_document(text)
    assert load_json_document('"\\ud83d\\ude00"') == "\U0001F600"  # a whole pair is fine


def test_invalid_json():
    with pytest.raises(DocumentError, match="invalid JSON"):
        load_json_document('{"a": ')


# --- the builder means what PyYAML means ---------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["yes", "no", "on", "off", "~", "null", "0o17", "0x1F", "1_000", "2024-01-02",
                     "2024-01-02 03:04:05", "1e3", ".inf", "-.inf", "((var))", "a: b", "- x", "'q'", "=", "<<"]),
)
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), children, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(document=_documents, flow=st.booleans(), share=st.booleans())
def test_builder_agrees_with_pyyaml(document, flow, share):
    if share:  # the dumper writes anchors and aliases for a shared object
        document = {"one": document, "two": document, "list": [document, document]}
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    assert load_document(text, DocumentLimits(max_nodes=10**6)) == yaml.safe_load(text)


@pytest.mark.parametrize("text", [
    "a: 2024-01-02\nb: !!binary aGVsbG8=\nc: !!str 12\nd: !!float 1\ne: 0b101\nf: 12:30:00\n",
    "plain: 'single'\nfolded: >\n  a\n  b\nliteral: |\n  x\n  y\n",
    "a: &v value\nb: *v\n",
])
def test_builder_agrees_with_pyyaml_on_scalars(text):
    assert load_document(text) == yaml.safe_load(text)


# --- found by the attacker's review (issue 8) ----------------------------------------------------


@pytest.mark.parametrize("text, needle", [
    ("a: !!int\n", "invalid YAML"),
    ("a: !!float\n", "invalid YAML"),
    ("a: !!bool x\n", "invalid YAML"),
    ("a: !!set x\n", "unsupported tag"),
    ("a: !!map x\n", "unsupported tag"),
    ("a: !!omap x\n", "unsupported tag"),
    ("a: !!pairs x\n", "unsupported tag"),
    ("a: 0x" + "f" * 4000 + "\n", "a number or timestamp of more than 128 characters"),
    ("a: 1" + ":1" * 200 + "\n", "a number or timestamp of more than 128 characters"),
    ("a: {&m <<: {x: 1}}\nc: [*m]\n", "merge key"),
])
def test_scalars_that_cannot_be_written_back_are_refused(text, needle):
    with pytest.raises(DocumentError, match=needle):
        load_document(text)


def test_quoted_long_numbers_stay_strings():
    assert load_document("a: '" + "1" * 500 + "'\n") == {"a": "1" * 500}


def test_an_unterminated_json_string_costs_one_scan():
    # Quadratic before: each quote of '"\\"\\"...' started a scan to the end of the text.
    with pytest.raises(DocumentError, match="not terminated"):
        load_json_document('"\\' * 2_000_000)


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "[-Infinity]"])
def test_json_constants_that_are_not_json_are_refused(text):
    with pytest.raises(DocumentError, match="not a JSON value"):
        load_json_document(text)


def test_the_written_text_is_budgeted_indentation_included():
    # 60 levels of nesting indent each of 2,000 lines by up to 120 spaces: the strings are small,
    # the text written is not.
    document: object = "a\n" * 2000
    for _ in range(60):
        document = {"k": [document]}
    with pytest.raises(LimitError, match="--max-expanded-bytes"):
        dump_document(document, DocumentLimits(max_expanded_bytes=100_000))
    assert dump_document(document) == dump_document(document, DocumentLimits())
    with pytest.raises(LimitError, match="--max-expanded-bytes"):
        dump_json_document({"k": ["x" * 1000] * 200}, DocumentLimits(max_expanded_bytes=100_000))


def test_json_output_refuses_nan():
    with pytest.raises(DocumentError, match="cannot be written as JSON"):
        dump_json_document({"a": float("nan")})
    assert dump_json_document({"a": [1, "é"]}) == '{"a": [1, "é"]}\n'


def test_lone_surrogates_are_found_anywhere():
    assert has_lone_surrogates({"a": ["x", {"k\ud800": 1}]})
    assert has_lone_surrogates(["\udfff"])
    assert not has_lone_surrogates({"a": ["é", "\U0001F600", 1, None]})


_RESOLVER = yaml.resolver.Resolver()
_LONG_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789_:.eE+-tTzZ xobXOBacdf\t", min_size=129, max_size=180),
    st.from_regex(r"[-+]?[0-9][0-9_]{130,150}(\.[0-9_]*([eE][-+][0-9]+)?)?", fullmatch=True),
    st.from_regex(r"[-+]?[1-9][0-9_]*(:[0-5]?[0-9]){65,70}(\.[0-9_]*)?", fullmatch=True),
    st.from_regex(r"[-+]?0(x[0-9a-fA-F_]{130}|o[0-7_]{130}|b[01_]{130})", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{110,120}( ?Z)?", fullmatch=True),
))
def test_long_plain_scalars_mean_what_pyyaml_says_without_its_resolver(text):
    """A long plain scalar is decided by a cheap check; whatever PyYAML would make a number or a
    timestamp is refused, and whatever the check lets through as a string is one to PyYAML too."""
    try:
        events = list(yaml.parse("a: " + text + "\n"))
    except yaml.YAMLError:
        return
    scalars = [e for e in events if isinstance(e, yaml.ScalarEvent)]
    if len(scalars) != 2 or scalars[1].value != text or not scalars[1].implicit[0] or len(text) <= 128:
        return  # the text is not one plain scalar (a comment, a key, a flow indicator...)
    pyyaml = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    try:
        ours = load_document("a: " + text + "\n")["a"]
    except DocumentError as exc:
        assert "more than 128 characters" in str(exc)
        return
    assert pyyaml not in _LONG_TAGS
    assert ours == text


def test_a_long_base60_scalar_is_refused_without_running_the_resolver():
    """10 MB of `1:1:1...` made PyYAML's int pattern keep ~0.6 GB of backtracking records."""
    import tracemalloc

    text = "a: 1" + ":1" * 5_000_000 + "\n"
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match="number or timestamp of more than 128"):
            load_document(text, DocumentLimits(max_bytes=11 * 2**20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(text)  # the text and the parser's copy of the scalar, not a record per repeat


SCALARS = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", "~", "null", "Null", "true", "yes", "off", "0x1F", "0o17", "1_000", "1:20", "-.inf", ".NaN",
                     "2026-12-01", "2026-12-01T10:00:00Z", "<<", "=", "12e3", "+1", "0b101", "x" * 65]),
    st.from_regex(r"[-+]?[0-9_:.eE]{1,12}", fullmatch=True),
)


@settings(max_examples=400, deadline=None)
@given(value=SCALARS, implicit=st.tuples(st.booleans(), st.booleans()))
def test_scalar_tags_are_pyyamls(value, implicit):
    from yaml.resolver import Resolver

    from pipeline_secrets.pure.yaml_tags import resolve_scalar

    expected = Resolver().resolve(yaml.ScalarNode, value, implicit)
    assert resolve_scalar(value, implicit) == expected
    assert resolve_scalar(value + "\n", implicit) == Resolver().resolve(yaml.ScalarNode, value + "\n", implicit)


def test_scalar_tags_keep_nothing_between_calls():
    """No table of values seen: one team's documents cannot change how fast another's are read
    or written (attack review 15, finding 1)."""
    from pipeline_secrets.pure import yaml_tags

    before = {name: value for name, value in vars(yaml_tags).items()
              if not name.startswith("__") and isinstance(value, (dict, list, set))}
    for n in range(1000):
        yaml_tags.resolve_scalar(f"secret-{n}", (True, False))
    after = {name: value for name, value in vars(yaml_tags).items()
             if not name.startswith("__") and isinstance(value, (dict, list, set))}
    assert after == before and set(after) == {"IMPLICIT"}


@pytest.mark.parametrize("as_json", [False, True])
def test_a_small_node_budget_is_timed_too(monkeypatch, as_json):
    """The web node's loop allows 1,024 values and 1 ms: the clock must be read within them
    (attack review 15, finding 4: it was read every 4,096 values, so never)."""
    from pipeline_secrets.pure import documents

    readings = iter(range(0, 10**6))  # a clock that moves one second each time it is read
    monkeypatch.setattr(documents.time, "monotonic", lambda: float(next(readings)))
    text = "[" + ", ".join(f"{n}.5" for n in range(1000)) + "]"
    limits = DocumentLimits(max_nodes=1024, max_seconds=0.5)
    with pytest.raises(LimitError, match="--document-timeout"):
        documents.parse_document(text, limits, as_json=as_json)
