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
    """The conditions ("one of these literals") patterns need, and which of them a text meets, found
    in one pass over it."""

    def __init__(self):
        self._conditions: dict[AnyOf, int] = {}
        self._automaton = None
        self._lock = threading.Lock()

    @property
    def literals(self) -> frozenset[str]:
        return frozenset(literal for any_of in self._conditions for literal in any_of)

    def condition_ids(self, all_of: AllOf) -> frozenset[int]:
        """Numbers for the conditions, so a text's met conditions are one set to test against."""
        with self._lock:
            for any_of in all_of:
                if any_of not in self._conditions:
                    self._conditions[any_of] = len(self._conditions)
                    self._automaton = None  # rebuilt at the next search
            return frozenset(self._conditions[any_of] for any_of in all_of)

    def met_in(self, text: str) -> frozenset[int]:
        """The conditions `text` meets; a word-start literal counts only where a word starts."""
        automaton = self._automaton
        if automaton is None:
            with self._lock:
                automaton = self._automaton = self._automaton or _automaton(self._conditions)
        met: set[int] = set()
        for end, (length, anywhere, at_word_start) in automaton.iter(text):
            met |= anywhere
            if at_word_start:
                before = end - length  # the character before the literal
                if before < 0 or not (text[before].isalnum() or text[before] == "_"):
                    met |= at_word_start
        return frozenset(met)


def _automaton(conditions: dict[AnyOf, int]):
    import ahocorasick

    anywhere: dict[str, set[int]] = {}
    at_word_start: dict[str, set[int]] = {}
    for any_of, number in conditions.items():
        for literal in any_of:
            plain = literal.removeprefix(WORD_START)
            anywhere.setdefault(plain, set())
            (at_word_start.setdefault(plain, set()) if plain != literal else anywhere[plain]).add(number)
    automaton = ahocorasick.Automaton()
    for plain, numbers in anywhere.items():
        automaton.add_word(plain, (len(plain), frozenset(numbers), frozenset(at_word_start.get(plain, ()))))
    if not anywhere:
        automaton.add_word(WORD_START, (1, frozenset(), frozenset()))  # an empty automaton cannot search
    automaton.make_automaton()
    return automaton


class FilteredPattern:
    """A regular expression split into its top-level alternatives, each run only when the text meets
    the conditions it needs. `search` answers exactly as the whole pattern's search would."""

    __slots__ = ("_alternatives", "pattern")

    def __init__(self, pattern: str, index: LiteralIndex):
        self.pattern = pattern
        alternatives = []
        for alternative in _split_alternatives(pattern):
            compiled = re.compile(alternative)
            needs = _needs(compiled)
            alternatives.append((index.condition_ids(needs) if needs else frozenset(), compiled))
        self._alternatives: tuple[tuple[frozenset[int], re.Pattern], ...] = tuple(alternatives)

    def search(self, text: str, met: frozenset[int]) -> bool:
        """Whether the pattern matches `text`, which meets the conditions `met` (LiteralIndex.met_in)."""
        return any(needs <= met and compiled.search(text) for needs, compiled in self._alternatives)


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
