"""Regular expressions that run only on texts that could match them.

Python's `re` tries a pattern that opens with `\\b(?:word|word...)` at every position, 8-60 µs on a
600-character request, and the analyzer has two dozen such cue patterns. Nearly every alternative of
them needs literals ("eigen", "translat" at the start of a word, "json" with "into") that the text
does not hold. One Aho-Corasick pass finds every such literal a text holds (about 10 µs), and an
alternative runs only when the text has all it needs. The literals are read from each alternative's
parse tree, so they cannot drift from the pattern.
"""

import re
import threading
from collections.abc import Iterable
from re import _constants as opcodes  # the parse tree's opcodes (stable since Python 3.11)
from re import _parser

# A character class with at most this many characters is a set of one-character literals.
MAX_CLASS_CHARS = 12
# Shorter literals are in most texts ("-", "or", "to"): looking for them costs more than it saves.
MIN_LITERAL_LENGTH = 3
# Conditions kept per alternative: the most selective ones.
MAX_CONDITIONS = 3
# Marks a literal that must start a word (it follows `\b` in the pattern).
WORD_START = "\0"

AnyOf = frozenset[str]  # the text holds one of these
AllOf = tuple[AnyOf, ...]  # ... and one of each of these


class LiteralIndex:
    """Every literal some pattern needs, found in a text in one pass."""

    def __init__(self):
        self._literals: set[str] = set()
        self._automaton = None
        self._lock = threading.Lock()

    @property
    def literals(self) -> frozenset[str]:
        return frozenset(self._literals)

    def add(self, literals: Iterable[str]) -> None:
        with self._lock:
            before = len(self._literals)
            self._literals.update(literals)
            if len(self._literals) != before:
                self._automaton = None  # rebuilt at the next search

    def found_in(self, text: str) -> frozenset[str]:
        """The literals `text` holds; a word-start literal is named with its mark when it starts a word."""
        automaton = self._automaton
        if automaton is None:
            with self._lock:
                automaton = self._automaton = self._automaton or _automaton(self._literals)
        found = set()
        for end, (literal, marked) in automaton.iter(text):
            found.add(literal)
            start = end - len(literal)  # the character before the literal
            if marked and (start < 0 or not (text[start].isalnum() or text[start] == "_")):
                found.add(WORD_START + literal)
        return frozenset(found)


def _automaton(literals: set[str]):
    import ahocorasick

    plain = {literal.removeprefix(WORD_START) for literal in literals}
    automaton = ahocorasick.Automaton()
    for literal in plain:
        automaton.add_word(literal, (literal, WORD_START + literal in literals))
    if not plain:
        automaton.add_word(WORD_START, (WORD_START, False))  # an empty automaton cannot search
    automaton.make_automaton()
    return automaton


class FilteredPattern:
    """A regular expression split into its top-level alternatives, each run only when the literals
    it needs are in the text. `search` answers exactly as the whole pattern's search would."""

    __slots__ = ("_alternatives", "pattern")

    def __init__(self, pattern: str, index: LiteralIndex):
        self.pattern = pattern
        alternatives = []
        for alternative in _split_alternatives(pattern):
            compiled = re.compile(alternative)
            needs = _needs(compiled)
            if needs:
                index.add(literal for any_of in needs for literal in any_of)
            alternatives.append((needs, compiled))
        self._alternatives: tuple[tuple[AllOf | None, re.Pattern], ...] = tuple(alternatives)

    def search(self, text: str, found: frozenset[str]) -> bool:
        """Whether the pattern matches `text`, whose literals are `found` (LiteralIndex.found_in)."""
        for needs, compiled in self._alternatives:
            if needs and not all(not any_of.isdisjoint(found) for any_of in needs):
                continue
            if compiled.search(text):
                return True
        return False


def _split_alternatives(pattern: str) -> list[str]:
    """`a|(?:b|c)|[|]` -> ["a", "(?:b|c)", "[|]"]: the `|` outside groups and classes."""
    parts, depth, in_class, escaped, start = [], 0, False, False, 0
    for position, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]" or pattern[position - 1] == "["
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:position])
            start = position + 1
    parts.append(pattern[start:])
    if len(parts) > 1:
        # A pattern that cannot be split by this scan (an unusual class) stays whole.
        try:
            [re.compile(part) for part in parts]
        except re.error:
            return [pattern]
    return parts


def _needs(pattern: re.Pattern) -> AllOf | None:
    # Case-insensitive patterns could match literals that `in` would not find.
    if pattern.flags & re.IGNORECASE:
        return None
    tree = _parser.parse(pattern.pattern, pattern.flags)
    if tree.state.flags & re.IGNORECASE:
        return None
    return _conditions(list(tree), word_start=False)


def _conditions(items: list, *, word_start: bool) -> AllOf | None:
    """What a sequence needs: each literal run, and what each of its required parts needs."""
    found: list[AnyOf] = []
    run: list[str] = []
    run_at_word_start = False
    for op, argument in [*items, (None, None)]:
        if op is opcodes.LITERAL:
            if not run:
                run_at_word_start = word_start and _is_word_char(chr(argument))
            run.append(chr(argument))
            word_start = False
            continue
        literal = "".join(run)
        if run_at_word_start:
            found.append(frozenset([WORD_START + literal.rstrip()]))
        elif literal.strip():  # spaces are in every text: they tell nothing
            found.append(frozenset([literal.strip()]))
        run = []
        if op is None:
            break
        any_of = _item(op, argument, word_start=word_start)
        if any_of:
            found.append(any_of)
        word_start = op is opcodes.AT and argument is opcodes.AT_BOUNDARY
    found = [any_of for any_of in found if _shortest(any_of) >= MIN_LITERAL_LENGTH]
    if not found:
        return None
    found.sort(key=lambda any_of: (_shortest(any_of), -len(any_of)), reverse=True)
    return tuple(found[:MAX_CONDITIONS])


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _shortest(any_of: AnyOf) -> int:
    return min(len(literal.removeprefix(WORD_START)) for literal in any_of)


def _item(op, argument, *, word_start: bool) -> AnyOf | None:
    if op is opcodes.SUBPATTERN:
        _group, add_flags, _del_flags, body = argument
        return None if add_flags & re.IGNORECASE else _best(list(body), word_start=word_start)
    if op is opcodes.BRANCH:
        union: set[str] = set()
        for alternative in argument[1]:
            any_of = _best(list(alternative), word_start=word_start)
            if any_of is None:
                return None
            union |= any_of
        return frozenset(union)
    if op in (opcodes.MAX_REPEAT, opcodes.MIN_REPEAT, opcodes.POSSESSIVE_REPEAT):
        minimum, _maximum, body = argument
        return _best(list(body), word_start=word_start) if minimum >= 1 else None
    if op is opcodes.IN:
        return _class_chars(argument)
    return None  # anchors, lookarounds, any character, back-references: nothing to require


def _best(items: list, *, word_start: bool) -> AnyOf | None:
    all_of = _conditions(items, word_start=word_start)
    return all_of[0] if all_of else None


def _class_chars(members: list) -> AnyOf | None:
    chars: set[str] = set()
    for op, argument in members:
        if op is opcodes.LITERAL:
            chars.add(chr(argument))
        elif op is opcodes.RANGE and argument[1] - argument[0] < MAX_CLASS_CHARS:
            chars.update(chr(code) for code in range(argument[0], argument[1] + 1))
        else:  # negated classes, wide ranges, \d (any Unicode digit), \w, \s: too many to list
            return None
    return frozenset(chars) if len(chars) <= MAX_CLASS_CHARS else None
