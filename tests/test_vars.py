from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, strategies as st

from pipeline_secrets.errors import FieldError, LimitError, UndefinedVarsError, VarSourceError, VarSyntaxError
from pipeline_secrets.pure.limits import DocumentLimits
from pipeline_secrets.pure.vars import (
    VarRef,
    collect_vars,
    find_vars,
    interpolate,
    interpolate_text,
    parse_var,
    walk_fields,
)


class CountingSecrets(Mapping[str, object]):
    """A secrets mapping that records every read, to prove each path is read once."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        self.reads: list[str] = []

    def __getitem__(self, key: str) -> object:
        self.reads.append(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


# --- parse_var ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "source", "path", "fields"),
    [
        ("hello", None, "hello", ()),
        ("hello.a.b", None, "hello", ("a", "b")),
        ('"hello.world"."a.b"."foo:bar"', None, "hello.world", ("a.b", "foo:bar")),
        ('"a.b".c', None, "a.b", ("c",)),
        ("source:hello", "source", "hello", ()),
        ("vault:a:b.c", "vault", "a:b", ("c",)),
        ('"my:path"."field.1"', None, "my:path", ("field.1",)),
        (":hello", None, "hello", ()),
        ('a"b"c', None, "abc", ()),
        ("team/pipe-line_1/@key.f", None, "team/pipe-line_1/@key", ("f",)),
        ("pässwörd.schlüssel", None, "pässwörd", ("schlüssel",)),
        ("密码", None, "密码", ()),
    ],
)
def test_parse_var(raw: str, source: str | None, path: str, fields: tuple[str, ...]) -> None:
    assert parse_var(raw) == VarRef(raw=raw, source=source, path=path, fields=fields)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('"some-source":path', "source must not be quoted"),
        ('a"b:c', "unterminated quote"),
        ('"a', "unterminated quote"),
        ('x:"a.b', "unterminated quote"),
        ("", "empty field"),
        ("vault:", "empty field"),
        ("vault:.field", "empty field"),
        ('vault:"".field', "empty field"),
        ("a..b", "empty field"),
        ("a.", "empty field"),
        (".a", "empty field"),
    ],
)
def test_parse_var_errors(raw: str, reason: str) -> None:
    with pytest.raises(VarSyntaxError) as caught:
        parse_var(raw)
    assert str(caught.value) == f"invalid var '{raw}': {reason}"


@pytest.mark.parametrize("raw", [" foo", "foo ", "foo bar!", "a(b", "a)b", "a\tb", "a\nb", "a. .b", "hello . world",
                                 '" hello ".world', "count - 1", "x٣"])
def test_parse_var_rejects_what_find_vars_would_not_find(raw: str) -> None:
    with pytest.raises(VarSyntaxError, match=r"^invalid var '"):
        parse_var(raw)
    assert find_vars(f"(({raw}))") == []


# --- find_vars ----------------------------------------------------------------------------


def test_find_vars_in_order_with_repeats() -> None:
    refs = find_vars("x ((b.f)) y ((a))((b.f)) z")
    assert [ref.raw for ref in refs] == ["b.f", "a", "b.f"]
    assert refs[0] == VarRef(raw="b.f", source=None, path="b", fields=("f",))


@pytest.mark.parametrize(
    "text",
    ["(( foo ))", "(( foo))", "((foo ))", "(()", "(())", "((foo bar!))", "((a)b))", "((a) )", "(a)"],
)
def test_find_vars_ignores_non_vars(text: str) -> None:
    assert find_vars(text) == []
    assert interpolate_text(text, {"foo": "X", "a": "X", "foo bar!": "X"}) == text


def test_find_vars_nested_parentheses() -> None:
    assert [ref.raw for ref in find_vars("(((a)))")] == ["a"]
    assert interpolate_text("(((a)))", {"a": "v"}) == "(v)"


def test_find_vars_unicode_letters_but_no_spaces_nor_other_unicode() -> None:
    # Concourse's class: ASCII word characters and Unicode letters (Go's \w\pL), nothing else.
    assert find_vars('(("a b" . c))') == []
    assert [ref.path for ref in find_vars("((pässwörd)) ((ключ)) ((密码))")] == ["pässwörd", "ключ", "密码"]
    assert find_vars("((x٣)) ((a²)) ((b½))") == []  # a non-ASCII digit, superscript, fraction: not letters


@pytest.mark.parametrize("text", [
    "i=$((count - 1))", "echo $(( i + 1 ))", "x=$((a*b))", "(( foo ))", "((a+b))", "((a,b))",
    "if (( $# > 0 )); then", "((x==1))", "$((16#ff))",
])
def test_shell_arithmetic_and_look_alikes_are_no_placeholders(text: str) -> None:
    assert find_vars(text) == []
    document = {text: [text, {"k": text}]}
    assert interpolate(document, {}) == document
    assert collect_vars(document) == []


def test_find_vars_raises_on_bad_var() -> None:
    with pytest.raises(VarSyntaxError, match=r"^invalid var '\"a': unterminated quote$"):
        find_vars('ok ((b)) then (("a))')


# --- collect_vars -------------------------------------------------------------------------


def test_collect_vars_unique_first_seen_in_keys_and_values_at_depth() -> None:
    document = {
        "((k))": ["((a))", {"deep": {"((b.x))": "pre ((a)) ((c))"}}],
        "plain": 3,
        7: None,
        "last": ["((k))", "((src:b.x))"],
    }
    assert [ref.raw for ref in collect_vars(document)] == ["k", "a", "b.x", "c", "src:b.x"]


def test_collect_vars_surfaces_syntax_errors_anywhere() -> None:
    with pytest.raises(VarSyntaxError, match="source must not be quoted"):
        collect_vars({"a": [{"b": 1, '(("s":x))': 2}]})


def test_collect_vars_of_scalars() -> None:
    assert collect_vars(None) == []
    assert collect_vars(12) == []
    assert [ref.raw for ref in collect_vars("((x))")] == ["x"]


# --- walk_fields --------------------------------------------------------------------------


def test_walk_fields() -> None:
    value = {"a": {"b": [1, 2]}, "n": None}
    assert walk_fields(value, parse_var("s.a.b")) == [1, 2]
    assert walk_fields(value, parse_var("s.n")) is None
    assert walk_fields(value, parse_var("s")) is value
    assert walk_fields("text", parse_var("s")) == "text"


def test_walk_fields_missing() -> None:
    with pytest.raises(FieldError) as caught:
        walk_fields({"a": {"c": 1}}, parse_var("src:s.a.b"))
    assert str(caught.value) == "missing field 'b' in var: src:s.a.b"


@pytest.mark.parametrize(
    ("value", "kind"),
    [("x", "str"), (3, "int"), (1.5, "float"), (True, "bool"), ([1], "list"), (None, "null")],
)
def test_walk_fields_into_non_map(value: object, kind: str) -> None:
    with pytest.raises(FieldError) as caught:
        walk_fields({"a": value}, parse_var("s.a.f"))
    assert str(caught.value) == f"cannot access field 'f' of non-map value ('{kind}') from var: s.a.f"


# --- interpolate: values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [{"user": "u", "n": [1, {"x": None}]}, [1, "two"], 3, 1.5, True, None, "text"]
)
def test_whole_placeholder_keeps_the_type(value: object) -> None:
    assert interpolate({"k": "((s))"}, {"s": value}) == {"k": value}


@pytest.mark.parametrize(
    ("value", "text"), [("str", "str"), (3, "3"), (1.5, "1.5"), (True, "true"), (False, "false")]
)
def test_placeholder_in_longer_string_becomes_text(value: object, text: str) -> None:
    assert interpolate(["a-((s))-b"], {"s": value}) == [f"a-{text}-b"]


@pytest.mark.parametrize(("value", "kind"), [(None, "null"), ({"a": 1}, "map"), ([1], "list")])
def test_non_primitive_in_longer_string_fails(value: object, kind: str) -> None:
    with pytest.raises(FieldError) as caught:
        interpolate({"k": "x ((v:s.f))"}, {}, sourced={"v": {"s": {"f": value}}})
    assert str(caught.value) == f"cannot interpolate non-primitive value ({kind}) from var: v:s.f"


def test_fields_and_sources() -> None:
    secrets = {"db": {"user": "admin", "port": 5432}}
    sourced = {"vault": {"db": {"port": 6543}}}
    document = {"url": "pg://((db.user))@h:((vault:db.port))", "port": "((db.port))"}
    assert interpolate(document, secrets, sourced=sourced) == {"url": "pg://admin@h:6543", "port": 5432}


def test_a_source_not_declared_is_an_error_even_with_allow_missing() -> None:
    for allow_missing in (False, True):
        with pytest.raises(VarSourceError, match=r"^missing source 'vault' in var: vault:db.port$"):
            interpolate(["((vault:db.port))"], {"db": 1}, allow_missing=allow_missing)


def test_build_local_vars_are_left_as_written_and_never_read() -> None:
    secrets = CountingSecrets({"x": "cluster"})
    document = {"((.:x))": ["((.:x))", "a-((.:x.f))-((x))"]}
    assert interpolate(document, secrets) == {"((.:x))": ["((.:x))", "a-((.:x.f))-cluster"]}
    assert secrets.reads == ["x"]


def test_field_error_from_document() -> None:
    with pytest.raises(FieldError, match=r"^missing field 'pass' in var: db.pass$"):
        interpolate(["((db.pass))"], {"db": {"user": "u"}})


def test_non_string_scalars_untouched() -> None:
    document = {"a": [1, 2.5, True, None], 3: False}
    assert interpolate(document, {}) == document


# --- interpolate: keys --------------------------------------------------------------------


def test_keys_are_interpolated_and_order_kept() -> None:
    document = {"z": 1, "((k))": 2, "pre-((k))-((n))": 3, "a": {"((n))": "((k))"}}
    result = interpolate(document, {"k": "key", "n": 7})
    assert result == {"z": 1, "key": 2, "pre-key-7": 3, "a": {7: "key"}}
    assert list(result) == ["z", "key", "pre-key-7", "a"]


@pytest.mark.parametrize(("value", "key"), [("s", "s"), (4, 4), (2.5, 2.5), (True, True)])
def test_whole_placeholder_key_keeps_primitive_type(value: object, key: object) -> None:
    result = interpolate({"((v))": 1}, {"v": value})
    assert result == {key: 1}
    assert type(next(iter(result))) is type(key)


def test_a_null_value_as_a_whole_key_is_a_null_key() -> None:
    assert interpolate({"((v))": 1, "k": 2}, {"v": None}) == {None: 1, "k": 2}


@pytest.mark.parametrize(("value", "kind"), [({"a": 1}, "map"), ([1], "list")])
def test_non_primitive_key_fails(value: object, kind: str) -> None:
    with pytest.raises(FieldError) as caught:
        interpolate({"((v))": 1}, {"v": value})
    assert str(caught.value) == f"cannot interpolate non-primitive value ({kind}) from var: v"


@pytest.mark.parametrize(
    ("document", "secrets", "message"),
    [
        ({"((a))": 1, "x": 2}, {"a": "x"}, "duplicate key '((a))' after interpolating var: a"),
        ({"x": 1, "((a))": 2}, {"a": "x"}, "duplicate key '((a))' after interpolating var: a"),
        ({"((a))": 1, "((b))": 2}, {"a": "x", "b": "x"}, "duplicate key '((b))' after interpolating var: b"),
        ({"p-((a))": 1, "p-x": 2}, {"a": "x"}, "duplicate key 'p-((a))' after interpolating var: a"),
        ({1: "one", "((a))": 2}, {"a": 1}, "duplicate key '((a))' after interpolating var: a"),
    ],
)
def test_duplicate_keys_fail(document: dict, secrets: dict, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        interpolate(document, secrets)
    assert str(caught.value) == message


# --- interpolate: undefined vars ----------------------------------------------------------


def test_undefined_vars_listed_as_concourse_prints_them_sorted_unique() -> None:
    document = {"((zeta))": ["((alpha.f))", "x ((vault:alpha))", "((mid))", "((ok))", "((zeta))",
                             '(("a.b".c))', "((team/x))"]}
    with pytest.raises(UndefinedVarsError) as caught:
        interpolate(document, {"ok": 1}, sourced={"vault": {}})
    assert str(caught.value) == 'undefined vars: "a.b".c, "team/x", alpha.f, mid, vault:alpha, zeta'
    assert caught.value.names == ('"a.b".c', '"team/x"', "alpha.f", "mid", "vault:alpha", "zeta")


@pytest.mark.parametrize(("raw", "printed"), [
    ("a", "a"), ("a.b", "a.b"), ('"a.b".c', '"a.b".c'), ("src:a/b.c", 'src:"a/b".c'), ('"a:b"', '"a:b"'),
    ("ключ", "ключ"),
])
def test_vars_are_printed_as_concourse_prints_them(raw: str, printed: str) -> None:
    assert str(parse_var(raw)) == printed


def test_allow_missing_leaves_undefined_vars_as_written() -> None:
    document = {
        "((gone))": "((gone.f))",
        "k-((src:gone))": ["a ((gone)) b ((ok))", "((ok))"],
    }
    result = interpolate(document, {"ok": 5}, allow_missing=True, sourced={"src": {}})
    assert result == {"((gone))": "((gone.f))", "k-((src:gone))": ["a ((gone)) b 5", 5]}


def test_allow_missing_still_checks_fields_of_defined_vars() -> None:
    with pytest.raises(FieldError, match="missing field 'f'"):
        interpolate(["((ok.f))", "((gone))"], {"ok": {}}, allow_missing=True)


def test_interpolate_text() -> None:
    assert interpolate_text("((a))", {"a": [1]}) == [1]
    assert interpolate_text("x((a))y((a))", {"a": 2}) == "x2y2"
    assert interpolate_text("((b)) ((a))", {}, allow_missing=True) == "((b)) ((a))"
    with pytest.raises(UndefinedVarsError, match=r"^undefined vars: a, b$"):
        interpolate_text("((b)) ((a)) ((b))", {})


# --- two phases, copies -------------------------------------------------------------------


def test_each_path_is_read_once() -> None:
    secrets = CountingSecrets({"s": {"a": "1", "b": "2"}, "t": "T"})
    document = {"((t))": ["((s.a))", "((s.b)) ((s.a))", {"x": "((vault:s.a))"}], "y": "((t))"}
    interpolate(document, secrets, sourced={"vault": {"s": {"a": "v"}}})
    assert sorted(secrets.reads) == ["s", "t"]


def test_syntax_errors_come_before_any_lookup() -> None:
    secrets = CountingSecrets({"a": 1})
    with pytest.raises(VarSyntaxError):
        interpolate(["((a))", {"k": '((a"))'}], secrets)
    assert secrets.reads == []


def test_input_and_secrets_are_not_modified() -> None:
    document = {"((k))": ["((m))", {"((k))": "x ((k))"}], "n": "((m.inner))"}
    secrets = {"k": "key", "m": {"inner": [1, 2]}}
    before = (copy.deepcopy(document), copy.deepcopy(secrets))
    interpolate(document, secrets)
    assert (document, secrets) == before


def test_output_shares_no_containers() -> None:
    secret = {"inner": [1, {"x": 2}]}
    document = {"a": "((m))", "b": ["((m))", "((m.inner))"], "plain": [1]}
    result = interpolate(document, {"m": secret})
    placed = [result["a"], result["b"][0]]
    assert placed[0] == placed[1] == secret
    assert placed[0] is not placed[1] and placed[0] is not secret
    assert placed[0]["inner"] is not placed[1]["inner"]
    assert result["b"][1] is not secret["inner"] and result["b"][1][1] is not secret["inner"][1]
    assert result["plain"] is not document["plain"] and result["b"] is not document["b"]
    result["a"]["inner"][1]["x"] = 99
    assert secret["inner"][1]["x"] == 2 and result["b"][0]["inner"][1]["x"] == 2


# --- no error message carries a secret value ----------------------------------------------

SECRET = "hunter2-SECRET-VALUE"


@pytest.mark.parametrize(
    ("document", "secrets", "error"),
    [
        (["((s.missing))"], {"s": {"other": SECRET, SECRET: 1}}, FieldError),
        (["((s.f))"], {"s": SECRET}, FieldError),
        (["((s.f.g))"], {"s": {"f": [SECRET]}}, FieldError),
        (["x ((s))"], {"s": {"k": SECRET}}, FieldError),
        (["x ((s))"], {"s": [SECRET]}, FieldError),
        ({"((s))": 1}, {"s": {SECRET: SECRET}}, FieldError),
        ({"((s))": 1}, {"s": [SECRET]}, FieldError),
        ({"((s))": 1, SECRET: 2}, {"s": SECRET}, FieldError),
        ({SECRET: 1, "((s))": 2}, {"s": SECRET}, FieldError),
        ({"((s))": 1, "((t))": 2}, {"s": SECRET, "t": SECRET}, FieldError),
        (["((s))", "((gone))"], {"s": SECRET}, UndefinedVarsError),
    ],
)
def test_errors_never_show_secret_values(document: object, secrets: dict, error: type) -> None:
    with pytest.raises(error) as caught:
        interpolate(document, secrets)
    assert SECRET not in str(caught.value)
    assert all(SECRET not in str(arg) for arg in caught.value.args)


# --- properties ---------------------------------------------------------------------------

_plain_text = st.text().filter(lambda s: "((" not in s)
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _plain_text
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_plain_text | st.integers(), children, max_size=4),
    max_leaves=20,
)


@given(_documents)
def test_documents_without_vars_come_back_equal(document: object) -> None:
    before = copy.deepcopy(document)
    assert collect_vars(document) == []
    assert interpolate(document, {}) == document
    assert document == before


# What Concourse's placeholder class admits: Unicode letters, ASCII digits, _ - / @ (and . : quoted).
_name_chars = st.characters(categories=("L",), include_characters="0123456789_-/@")
_segments = st.text(_name_chars | st.sampled_from(".:"), min_size=1, max_size=8)


def _written(segment: str) -> str:
    needs_quotes = "." in segment or ":" in segment
    return f'"{segment}"' if needs_quotes else segment


@given(
    st.none() | st.text(_name_chars, min_size=1, max_size=6),
    _segments,
    st.lists(_segments, max_size=3),
)
def test_parse_var_round_trip(source: str | None, path: str, fields: list[str]) -> None:
    raw = ".".join(_written(segment) for segment in [path, *fields])
    if source is not None:
        raw = f"{source}:{raw}"
    ref = VarRef(raw=raw, source=source, path=path, fields=tuple(fields))
    assert parse_var(raw) == ref
    assert find_vars(f"a ((({raw}))) b (({raw}))") == [ref, ref]


_names = st.text(
    st.characters(categories=("L",), include_characters="0123456789_-/"), min_size=1, max_size=6
)
# No parentheses, so joining text and placeholders never forms a placeholder by accident.
_filler = st.text(st.characters(exclude_characters="()"), max_size=5)


@given(
    st.dictionaries(_names, _filler, min_size=1, max_size=5).flatmap(
        lambda secrets: st.tuples(
            st.just(secrets),
            st.lists(st.lists(st.sampled_from(sorted(secrets)) | _filler, max_size=5), max_size=5),
        )
    )
)
def test_defined_vars_all_replaced(case: tuple[dict[str, str], list[list[str]]]) -> None:
    secrets, pieces = case
    document = ["".join(f"(({p}))" if p in secrets else p for p in parts) for parts in pieces]
    result = interpolate(document, secrets)
    assert result == ["".join(secrets.get(p, p) for p in parts) for parts in pieces]
    for name in secrets:
        assert all(f"(({name}))" not in text for text in result)


@given(st.text())
def test_find_vars_only_raises_syntax_errors(text: str) -> None:
    try:
        refs = find_vars(text)
    except VarSyntaxError:
        return
    for ref in refs:
        assert f"(({ref.raw}))" in text


# --- the output budget (issue 8) ---------------------------------------------------------------


def test_output_budget_stops_a_value_placed_many_times_before_building_it():
    secrets = {"big": "x" * 65536}
    document = {"l": ["((big))"] * 1000, "s": "a ((big)) b " * 10}
    with pytest.raises(LimitError, match="after interpolation.*more than 1,000,000 bytes.*--max-expanded-bytes"):
        interpolate(document, secrets, limits=DocumentLimits(max_expanded_bytes=1_000_000))
    with pytest.raises(LimitError):
        interpolate({"s": "((big))" * 100}, secrets, limits=DocumentLimits(max_expanded_bytes=1_000_000))
    out = interpolate(document, secrets, limits=DocumentLimits(max_expanded_bytes=100_000_000))
    assert len(out["l"]) == 1000


def test_output_budget_counts_mappings_put_in_whole_and_keys():
    secrets = {"m": {"k": "v" * 1000}, "key": "k" * 600}
    small = DocumentLimits(max_expanded_bytes=10_000)
    with pytest.raises(LimitError):
        interpolate({"a": ["((m))"] * 20}, secrets, limits=small)
    with pytest.raises(LimitError):
        interpolate({"((key))": "x", "y": "((key))" * 30}, secrets, limits=small)
    assert interpolate({"a": "((m))"}, secrets, limits=small) == {"a": {"k": "v" * 1000}}


def test_output_budget_counts_the_values_a_mapping_put_in_whole_brings():
    secrets = {"wide": {f"k{i}": i for i in range(7500)}}  # small text, many values
    with pytest.raises(LimitError, match="more than 250,000 values .*--max-document-nodes"):
        interpolate(["((wide))"] * 400, secrets, limits=DocumentLimits())
    assert len(interpolate(["((wide))"] * 15, secrets, limits=DocumentLimits())) == 15  # 15 x 15,001 values


def test_very_long_vars_are_refused_before_parsing():
    with pytest.raises(VarSyntaxError, match="longer than 1024 characters"):
        parse_var("v." + "ab." * 40_000 + "x")
    assert parse_var("a" + ".b" * 500).fields == ("b",) * 500


def test_no_budget_by_default():
    assert interpolate({"a": "((s))" * 1000}, {"s": "x" * 1000}) == {"a": "x" * 1_000_000}
