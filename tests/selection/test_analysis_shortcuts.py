"""The analyzer's speed shortcuts answer exactly as the plain regular expressions they stand for.

A request is analysed in well under a millisecond because most patterns are skipped when a text lacks
what every match needs, and a few are written character-first so the regex engine can jump to that
character. Each shortcut is checked here against the plain form, on texts built from the very
strings the shortcuts look for.
"""

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from selection.analysis import (
    CUE_LITERALS,
    EQUATION,
    FILTERED,
    INLINE_CODE,
    LOCALE_PREFIXES,
    QUOTED,
    STATEMENT,
    STATEMENT_VERBS,
    TASK_CUES,
    TRACEBACK,
    _count,
    _equations,
    _has_traceback,
    _Text,
)
from selection.literals import WORD_START

# The forms the character-first patterns were written in before: a lookbehind first.
PLAIN_INLINE_CODE = re.compile(r"(?<!`)`[^`\n]{2,200}`(?!`)")
PLAIN_QUOTED = re.compile(QUOTED.pattern.replace(r"'(?<!\w')(?:", r"(?<!\w)'(?:"), QUOTED.flags)
PLAIN_CARET = re.compile(r"[\w)]\^[\dx-z(]")
CARET = re.compile(r"\^(?<=[\w)]\^)[\dx-z(]")
PLAIN_LOCALE = re.compile(r"\bfor (?:pt|es|fr|de|it|ja|zh|ko)[-_][a-z]{2}\b")
LOCALE = re.compile(rf"\bfor (?:{LOCALE_PREFIXES})[a-z]{{2}}\b")

LITERALS = sorted({literal.removeprefix(WORD_START) for literal in CUE_LITERALS.literals})
PIECES = st.one_of(
    st.sampled_from(LITERALS),
    st.sampled_from(
        [
            " ",
            "\n",
            "  at ",
            "(",
            "`",
            "```",
            "'",
            '"',
            "«",
            "»",
            "I'm",
            "don't",
            "x",
            "_",
            "-",
            "^",
            "=",
            "$",
            "\\frac{",
            "2",
            "12",
            "Error",
            "Exception",
            "Traceback (most recent call last)",
            "Anna says",
            "he said",
            "She claims",
            "é",
            "2 + 3",
            "x^2",
            "for ",
            "pt",
            "-br",
            "_mx",
        ]
    ),
    st.text(max_size=4),
)
TEXTS = st.lists(PIECES, max_size=30).map("".join)


def test_the_shortcuts_checked_here_are_the_ones_in_use():
    assert PLAIN_QUOTED.pattern != QUOTED.pattern
    assert PLAIN_INLINE_CODE.pattern != INLINE_CODE.pattern
    cue_patterns = [cue.pattern.pattern for cues in TASK_CUES.values() for cue in cues if cue.pattern]
    assert any(CARET.pattern in pattern for pattern in cue_patterns)
    assert any(LOCALE.pattern in pattern for pattern in cue_patterns)
    # FilteredPattern compiles the alternatives without flags: a flagged pattern would answer otherwise.
    assert all(pattern.flags == re.UNICODE for pattern in FILTERED)
    assert all(verb in STATEMENT.pattern for verb in STATEMENT_VERBS)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
@example(text="it must, at least, handle edge cases; only between 2 and 3")
@example(text="how many apples did she buy? cuántos años tienes")
def test_filtered_word_patterns_count_as_the_whole_pattern(text):
    lowered = _Text(text)
    for pattern, filtered in FILTERED.items():
        assert filtered.search(lowered.raw, lowered.met) == bool(pattern.search(lowered.raw)), pattern.pattern
        assert _count(pattern, lowered) == len(pattern.findall(lowered.raw)), pattern.pattern


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
@example(text="  at com.example.Main(Main.java:3)")
@example(text="raise KeyError('x')")
@example(text="solve x^2 - 4 = 0 and $a+b$ with \\frac{1}{2}")
def test_skipped_scans_would_have_found_nothing(text):
    assert _has_traceback(text) == bool(TRACEBACK.search(text))
    assert _equations(text.lower()) == len(EQUATION.findall(text.lower()))
    if not any(verb in text for verb in STATEMENT_VERBS):
        assert not STATEMENT.findall(text)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
@example(text="use `git status` and ``not this`` or `x`")
@example(text="'Hello there, friend' and it's 'don't stop me now'")
@example(text="(a+b)^2 x^y 2^(n)")
@example(text="adapt it for pt-br and for es_mx, not for fr-")
def test_character_first_patterns_match_as_the_lookbehind_first_ones(text):
    for plain, fast in ((PLAIN_INLINE_CODE, INLINE_CODE), (PLAIN_QUOTED, QUOTED)):
        assert [m.span() for m in fast.finditer(text)] == [m.span() for m in plain.finditer(text)]
        assert fast.sub(" ", text) == plain.sub(" ", text)
    assert bool(CARET.search(text)) == bool(PLAIN_CARET.search(text))
    assert [m.span() for m in LOCALE.finditer(text)] == [m.span() for m in PLAIN_LOCALE.finditer(text)]
