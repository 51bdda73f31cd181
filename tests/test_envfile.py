from pathlib import Path

from autotrain_runner.config.envfile import expand, read_entries
from helpers import write


def entries_of(tmp_path: Path, text: str):
    return read_entries(write(tmp_path / "x.env", text))


def test_dotenv_syntax_with_line_numbers(tmp_path):
    entries, problems = entries_of(tmp_path, "A=1\n# comment\nexport B=\"two words\"\n\nC='$NOT'\n")
    assert problems == []
    assert [(e.key, e.raw, e.line) for e in entries] == [("A", "1", 1), ("B", "two words", 3), ("C", "$NOT", 5)]
    assert [e.expand for e in entries] == [True, True, False]


def test_unterminated_quote_is_reported_and_parsing_goes_on(tmp_path):
    entries, problems = entries_of(tmp_path, 'A=1\nB="open\nC=3\nbad line\nD=4\n')
    assert [(e.key, e.line) for e in entries] == [("A", 1), ("C", 3), ("D", 5)]
    assert [str(p).split(": ", 1)[1] for p in problems] == [
        'B: unterminated " quote; close it on this line',
        "malformed line 'bad line'; expected KEY=value",
    ]
    assert str(problems[0]).startswith(f"{tmp_path / 'x.env'}:2:")
    assert str(problems[1]).startswith(f"{tmp_path / 'x.env'}:4:")


def test_bash_default_forms():
    env = {"SET": "yes", "EMPTY": ""}
    assigned = {}

    def lookup(name):
        return assigned.get(name, env.get(name))

    def assign(name, value):
        assigned[name] = value

    assert (
        expand("${SET:-no}/${UNSET:-no}/${EMPTY:-fallback}/${EMPTY-kept}", lookup, assign) == "yes/no/fallback/"
    )  # bash: "-" without ":" keeps a set-but-empty value
    assert expand('${NEW:="202021013"}-$NEW-${NEW}', lookup, assign) == "202021013-202021013-202021013"
    assert assigned == {"NEW": "202021013"}
    assert expand("$UNSET_VAR", lookup, assign) == ""


def test_nested_defaults_and_escaped_dollar():
    values = {"Y": "why"}

    def lookup(name):
        return values.get(name)

    def assign(name, value):
        values[name] = value

    assert expand("${X:-${Z:-deep}}|${X:-${Y:-deep}}", lookup, assign) == "deep|why"
    assert expand("a\\$X b$Y", lookup, assign) == "a$X bwhy"
