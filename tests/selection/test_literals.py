"""A FilteredPattern answers exactly as its whole regular expression would, on any text."""

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from selection.analysis import CUE_LITERALS, TASK_CUES
from selection.literals import WORD_START, FilteredPattern, LiteralIndex

CUE_PATTERNS = [cue.pattern for cues in TASK_CUES.values() for cue in cues if cue.pattern is not None]
LITERALS = sorted({literal.removeprefix(WORD_START) for literal in CUE_LITERALS.literals})
PIECES = st.one_of(
    st.sampled_from(LITERALS),
    st.sampled_from([" ", "  ", "\n", ",", ".", "?", "'", "_", "-", "l'", "é", "2", "12 ", "(", "x", "s"]),
    st.text(max_size=4),
)
TEXTS = st.lists(PIECES, max_size=30).map("".join)


def test_every_cue_pattern_is_filtered():
    assert len(CUE_PATTERNS) >= 20
    assert len(LITERALS) > 100


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
@example(text="l'amour")
@example(text="what is 2 + 2?")
@example(text="translate this to french please")
def test_filtered_search_equals_the_whole_pattern(text):
    met = CUE_LITERALS.met_in(text)
    for pattern in CUE_PATTERNS:
        assert pattern.search(text, met) == bool(re.search(pattern.pattern, text)), pattern.pattern


def test_a_word_start_literal_counts_only_at_the_start_of_a_word():
    index = LiteralIndex()
    pattern = FilteredPattern(r"\bport \d+|c\+\+", index)
    for text, expected in [
        ("open port 80", True),
        ("report 80", False),
        ("(port 80)", True),
        ("port 80", True),
        ("a_port 80", False),
        ("l'port 8", True),
        ("c++", True),
        ("a port without digits", False),
    ]:
        assert pattern.search(text, index.met_in(text)) is expected, text
        assert bool(re.search(pattern.pattern, text)) is expected, text


def test_bars_inside_groups_and_classes_do_not_split():
    index = LiteralIndex()
    pattern = FilteredPattern(r"(?:alpha|beta) gamma|[|]delta|\|epsilon", index)
    assert pattern.search("beta gamma", index.met_in("beta gamma"))
    assert pattern.search("x|delta", index.met_in("x|delta"))
    assert pattern.search("|epsilon", index.met_in("|epsilon"))
    assert not pattern.search("gamma", index.met_in("gamma"))
    assert not pattern.search("delta epsilon", index.met_in("delta epsilon"))


def test_patterns_added_after_a_search_are_found_too():
    index = LiteralIndex()
    first = FilteredPattern(r"\bkiwi\w*", index)
    assert first.search("kiwis", index.met_in("kiwis"))
    second = FilteredPattern(r"\bmango\w*", index)
    assert second.search("mangoes", index.met_in("mangoes"))
