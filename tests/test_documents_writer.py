"""The YAML writer: ``encode_document`` builds the node graph itself and must write exactly what
``yaml.dump`` with the dumper it replaced wrote, byte for byte, and fail where and how it failed."""

from __future__ import annotations

import collections
import datetime
import enum
import io
import pathlib
from typing import Any

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from pipeline_secrets.errors import DocumentError, LimitError
from pipeline_secrets.pure.documents import DocumentLimits, encode_document, load_document
from pipeline_secrets.pure.yaml_writer import DUMP_OPTIONS, MAX_FAST_DEPTH, DocumentDumper, document_node

HELLO = pathlib.Path(__file__).resolve().parents[1] / "src/pipeline_secrets/examples/hello-pipeline.yml"


class ReferenceDumper(yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper):  # type: ignore[misc]
    """The dumper encode_document used before it built nodes itself, kept here as it was."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _reference_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


ReferenceDumper.add_representer(str, _reference_str)


def reference_encode(document: Any) -> bytes:
    """encode_document's YAML path as it was: PyYAML's representer, then its emitter."""
    out = io.StringIO()
    try:
        yaml.dump(document, out, Dumper=ReferenceDumper, sort_keys=False, allow_unicode=True,
                  default_flow_style=False, width=1 << 30)
        return out.getvalue().encode("utf-8")
    except (UnicodeEncodeError, yaml.YAMLError) as exc:
        raise DocumentError(f"the document cannot be written as YAML: {type(exc).__name__}") from None


def outcome(encode: Any, document: Any) -> Any:
    try:
        return encode(document)
    except RecursionError:  # its message says which call was the one too many, not why
        return RecursionError, ""
    except Exception as exc:  # the failure is what is compared
        return type(exc), str(exc)


def assert_same(document: Any) -> None:
    assert outcome(encode_document, document) == outcome(reference_encode, document)


def shape(node: yaml.Node) -> Any:
    """Everything of a node the emitter reads."""
    if isinstance(node, yaml.ScalarNode):
        return type(node), node.tag, node.value, node.style
    if isinstance(node, yaml.MappingNode):
        items = [(shape(key), shape(value)) for key, value in node.value]
        return type(node), node.tag, items, node.flow_style
    return type(node), node.tag, [shape(item) for item in node.value], node.flow_style


# Strings that YAML would read as something else unless quoted, and strings the emitter must
# quote, escape or break for other reasons.
TRICKY = st.sampled_from([
    "", " ", "123", "-1", "+1", "0x1f", "0o17", "0b101", "1_000", "1:20", "1.5", "1e3", ".5", ".inf", "-.Inf",
    ".nan", "NaN", "true", "True", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "2024-01-01",
    "2024-01-01 10:00:00", "2001-12-14t21:59:43.10-05:00", "<<", "=", "- item", "a: b", "#x", "x #y", " lead",
    "trail ", "line\n", "\n", "\n\n", "a\n\nb", "  indented\nx", "a\nb ", "tab\tin", "\t", "key: |", "'", '"',
    "@x", "`x", "%x", "!tag", "&a", "*a", "{a}", "[a]", "?", "? x", "|", ">", "null\n", "((var))",
    "((source:path.field))", "café ☕", "日本語", "\x85", "\u2028", "\ufeff", "\x00", "\x1b[0m", "\U0001F600",
    "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\n", "word " * 40,
])
TEXT = st.one_of(TRICKY, st.text(max_size=30), st.text(alphabet="ab \n\t:-#'\"", max_size=12))
INTS = st.one_of(st.integers(), st.sampled_from([0, -1, 2**63, -(2**64) - 1, 10**100, -(10**300)]))
FLOATS = st.one_of(
    st.floats(),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 1e17, 1e16, 1e-7, 5e-324, 1.5, float("inf"), float("-inf"),
                     float("nan"), 1.0, 123456789.0, 2.5e-10]),
)
MOMENTS = st.one_of(
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(datetime.timezone.utc)),
    st.datetimes(timezones=st.builds(datetime.timezone, st.timedeltas(min_value=datetime.timedelta(hours=-23),
                                                                      max_value=datetime.timedelta(hours=23)))),
)
SCALARS = st.one_of(TEXT, INTS, FLOATS, st.booleans(), st.none(), MOMENTS)
KEYS = st.one_of(TEXT, INTS, FLOATS, st.booleans(), st.none(), st.dates())
# What PyYAML's safe representer knows and the fast path hands back to it: bytes, tuples, sets.
OTHERS = st.one_of(st.binary(max_size=40), st.lists(SCALARS, max_size=3).map(tuple),
                   st.sets(st.one_of(st.integers(), st.text(max_size=5)), max_size=3))


def documents(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=6),
        max_leaves=40,
    )


@settings(max_examples=400, deadline=None)
@given(documents(SCALARS))
def test_the_writer_writes_what_yaml_dump_wrote(document):
    assert_same(document)
    node = document_node(document, ReferenceDumper(io.StringIO(), **DUMP_OPTIONS).represent_data)
    assert node is not None
    assert shape(node) == shape(ReferenceDumper(io.StringIO(), **DUMP_OPTIONS).represent_data(document))


@settings(max_examples=200, deadline=None)
@given(documents(st.one_of(SCALARS, OTHERS)))
def test_values_the_fast_path_hands_back_are_written_as_before(document):
    assert_same(document)


def test_plain_documents_never_use_pyyaml_representer():
    def refuse(value: Any) -> yaml.Node:
        raise AssertionError(f"handed back: {value!r}")

    document = load_document(HELLO.read_text())
    document["extra"] = {1: 1.5, None: [True, False, None, -0.0, 10**40], 2.5: "multi\nline\n"}
    assert document_node(document, refuse) is not None


@pytest.mark.parametrize("value", [
    0.0, -0.0, 1e17, 1e16, 1e300, -1e300, 5e-324, 1e-7, 1.5, float("inf"), float("-inf"), float("nan"),
    10**100, -(10**100), True, False, None, "", "\n", "1e3", "true", "null", "~", "2024-01-01",
    datetime.date(2024, 1, 31), datetime.datetime(2024, 1, 31, 12, 30, 5, 123),
    datetime.datetime(2024, 1, 31, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))),
    b"\x00bytes\xff", (1, "a"), (), {1, 2}, set(),
])
def test_edge_values_are_written_as_before(value):
    assert_same(value)
    assert_same({"k": value})
    assert_same([value, [value]])


def test_float_texts():
    text = encode_document([1e17, -0.0, float("inf"), float("-inf"), float("nan"), 1e300]).decode()
    assert text == "- 1.0e+17\n- -0.0\n- .inf\n- -.inf\n- .nan\n- 1.0e+300\n"


@pytest.mark.parametrize("key", [1, -1, 1.5, float("nan"), True, False, None, datetime.date(2024, 1, 1), (1, 2),
                                 "multi\nline key", "", "123"])
def test_keys_of_every_scalar_type_are_written_as_before(key):
    assert_same({key: "v", "after": [key]})


class _Text(str):
    pass


class _Level(enum.IntEnum):
    LOW = 1


@pytest.mark.parametrize("value", [
    object(), _Text("sub"), _Level.LOW, collections.OrderedDict(a=1), collections.defaultdict(list, a=[1]),
    frozenset({1}), 1j, [(1, [object()])],
])
def test_values_yaml_cannot_write_fail_as_before(value):
    assert_same({"k": value})
    with pytest.raises(DocumentError, match="cannot be written as YAML: RepresenterError"):
        encode_document({"ok": [1, 2], "k": value})


def test_an_int_too_long_for_decimal_fails_as_before():
    huge = 10**5000  # Python refuses to write more than 4,300 digits: ValueError, today as before
    assert_same({"k": [huge]})
    with pytest.raises(ValueError):
        encode_document({"k": [huge]})


def test_lone_surrogates_fail_as_before():
    assert_same({"k": "\ud800"})
    with pytest.raises(DocumentError, match="UnicodeEncodeError"):
        encode_document({"k": "\ud800"})


def nested(depth: int, leaf: Any = "x") -> Any:
    document = leaf
    for level in range(depth):
        document = {"k": document} if level % 2 else [document]
    return document


@pytest.mark.parametrize("depth", [0, 1, 64, MAX_FAST_DEPTH - 1, MAX_FAST_DEPTH, MAX_FAST_DEPTH + 1, 5000])
def test_deep_documents_are_written_or_refused_as_before(depth):
    # Past MAX_FAST_DEPTH PyYAML writes the document itself, so its RecursionError (about 330 levels)
    # stays where it was, and libyaml's C recursion never goes deeper than it went.
    assert_same(nested(depth))
    assert_same(nested(depth, datetime.date(2024, 1, 1)))


def test_the_fast_path_stops_at_its_depth():
    def represent(value: Any) -> yaml.Node:
        raise AssertionError(value)

    assert document_node(nested(MAX_FAST_DEPTH), represent) is not None
    assert document_node(nested(MAX_FAST_DEPTH + 1), represent) is None


def test_a_collection_pyyaml_represents_leaves_the_document_to_pyyaml():
    # A tuple's node is built by PyYAML's recursion, whose depth the fast path's bound does not see.
    represent_data = DocumentDumper(io.StringIO(), **DUMP_OPTIONS).represent_data
    assert document_node({"k": [datetime.date(2024, 1, 1)]}, represent_data) is not None
    assert document_node({"k": [(1, 2)]}, represent_data) is None
    assert document_node({(1, 2): "v"}, represent_data) is None


def test_cycles_fail_as_before():
    cycle: list[Any] = [1]
    cycle.append(cycle)
    loop: dict[str, Any] = {}
    loop["self"] = {"again": loop}
    for document in (cycle, loop):
        result = outcome(encode_document, document)
        assert result == outcome(reference_encode, document)
        assert result[0] is RecursionError


def test_shared_values_are_written_in_full():
    shared = {"image": "alpine", "tags": ["x", "y"], "when": datetime.date(2024, 1, 1)}
    document = {"a": shared, "b": shared, "c": [shared["tags"], shared["tags"]], "d": [None, None, True, True]}
    assert_same(document)
    assert b"&" not in encode_document(document) and b"*" not in encode_document(document)


def test_the_example_pipeline_is_written_as_before():
    assert_same(load_document(HELLO.read_text()))


def test_the_budget_and_the_clock_still_bound_the_written_text():
    document = {"k": ["x" * 1000] * 200}
    with pytest.raises(LimitError, match="--max-expanded-bytes"):
        encode_document(document, DocumentLimits(max_expanded_bytes=100_000))
    assert encode_document(document, DocumentLimits(max_expanded_bytes=300_000)) == reference_encode(document)
    with pytest.raises(LimitError, match="--document-timeout"):
        encode_document(document, DocumentLimits(max_seconds=-1.0))


def test_document_dumper_is_yaml_dump_of_the_old_dumper():
    document = load_document(HELLO.read_text())
    assert yaml.dump(document, Dumper=DocumentDumper, **DUMP_OPTIONS).encode() == reference_encode(document)
