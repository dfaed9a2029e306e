"""Steering rules: a YAML file in which an organization says how model selection treats which requests.

    rules:
      - name: cost-aware-selection
        priority: 100
        when:
          - type: request
            path: /v1/chat/completions
        then:
          - type: select-model
            quality_requirement: high
            cost_limit: 0.50

Rules are edited by people, so `parse_rules` reports every problem in one go, each with its line and
field, instead of stopping at the first. They are matched on every admitted request, so parsing
compiles each condition into a small frozen object with its globs already turned into regular
expressions; `RuleSet.first_match` then only compares values. Storing rule files and acting on the
matched rule's actions is done elsewhere (the admission engine).
"""

import fnmatch
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import yaml

from budgets.choices import BudgetStatus
from costswitch.errors import DomainError
from models_registry.choices import TaskType

MAX_INPUT_BYTES = 256 * 1024
MAX_RULES = 500
# The deepest valid document is root > rules > rule > when > condition > match > value (7 levels);
# the limit only stops a pathological file from exhausting the composer's recursion.
MAX_NESTING = 20
# A hopeless file (say, a pasted log) would otherwise produce thousands of entries in one response.
MAX_PROBLEMS_REPORTED = 100
MAX_TEXT_LENGTH = 500

REQUEST_PRIORITIES = ("low", "normal", "high", "critical")
BUDGET_SCOPES = ("organization", "team", "user", "tightest")
QUALITY_LEVELS = ("low", "medium", "high", "max")
STRATEGIES = ("cost_optimized", "balanced", "quality_first")
TASK_TYPES = tuple(TaskType.values)
BUDGET_STATUSES = tuple(BudgetStatus.values)

RULE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
DENY_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class RulesInvalid(DomainError):
    """The rules file was refused; `details["problems"]` lists what is wrong, in file order, so an
    editor can mark every problem at once."""

    status = 400
    code = "invalid_rules"

    def __init__(self, problems: Sequence["RuleProblem"]):
        self.problems = tuple(problems)
        count = len(self.problems)
        summary = f"{self.problems[0]}" if count == 1 else f"{self.problems[0]} (and {count - 1} more)"
        super().__init__(
            f"The rules are invalid: {summary}",
            details={
                "problems": [problem.as_dict() for problem in self.problems[:MAX_PROBLEMS_REPORTED]],
                "problem_count": count,
            },
        )


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong in a rules file. `line` is 1-based; None when the problem is the whole input."""

    line: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        where = ", ".join(part for part in (f"line {self.line}" if self.line else "", self.field) if part)
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What is known about a request when rules are matched. A request without a model asked for
    `auto`, which is how `model` globs see it."""

    path: str = ""
    requested_model: str | None = None
    priority: str = "normal"
    task_type: str = "chat"
    complexity: float = 0.0
    input_tokens: int = 0
    budget_status: str = "normal"
    percent_used: Decimal = Decimal(0)
    team: str | None = None
    user: str | None = None
    api_key: str | None = None
    tags: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=dict)


# --- Compiled conditions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlobSet:
    """fnmatch-style globs (case-sensitive on every OS) compiled into one regular expression."""

    globs: tuple[str, ...]
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alternatives = "|".join(f"(?:{fnmatch.translate(glob)})" for glob in self.globs)
        object.__setattr__(self, "_pattern", re.compile(alternatives))

    def matches(self, value: str) -> bool:
        return self._pattern.match(value) is not None


@dataclass(frozen=True, slots=True)
class RequestCondition:
    paths: GlobSet | None = None
    models: GlobSet | None = None
    priorities: frozenset[str] | None = None

    def matches(self, context: RuleContext) -> bool:
        if self.paths is not None and not self.paths.matches(context.path):
            return False
        if self.models is not None and not self.models.matches(context.requested_model or "auto"):
            return False
        return self.priorities is None or context.priority in self.priorities


@dataclass(frozen=True, slots=True)
class TaskCondition:
    task_types: frozenset[str] | None = None
    complexity_min: float | None = None
    complexity_max: float | None = None

    def matches(self, context: RuleContext) -> bool:
        if self.task_types is not None and context.task_type not in self.task_types:
            return False
        if self.complexity_min is not None and context.complexity < self.complexity_min:
            return False
        return self.complexity_max is None or context.complexity <= self.complexity_max


@dataclass(frozen=True, slots=True)
class TokensCondition:
    """Bounds on the estimated input tokens, both inclusive."""

    min: int | None = None
    max: int | None = None

    def matches(self, context: RuleContext) -> bool:
        if self.min is not None and context.input_tokens < self.min:
            return False
        return self.max is None or context.input_tokens <= self.max


@dataclass(frozen=True, slots=True)
class BudgetCondition:
    """Status and percent used of the caller's tightest budget; percent bounds are inclusive."""

    statuses: frozenset[str] | None = None
    percent_used_min: Decimal | None = None
    percent_used_max: Decimal | None = None

    def matches(self, context: RuleContext) -> bool:
        if self.statuses is not None and context.budget_status not in self.statuses:
            return False
        if self.percent_used_min is not None and context.percent_used < self.percent_used_min:
            return False
        return self.percent_used_max is None or context.percent_used <= self.percent_used_max


@dataclass(frozen=True, slots=True)
class ScopeCondition:
    """Who is calling; every field given must match, and a caller without that part never does."""

    teams: frozenset[str] | None = None
    users: frozenset[str] | None = None
    api_keys: frozenset[str] | None = None

    def matches(self, context: RuleContext) -> bool:
        if self.teams is not None and context.team not in self.teams:
            return False
        if self.users is not None and context.user not in self.users:
            return False
        return self.api_keys is None or context.api_key in self.api_keys


_MISSING = object()


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    """Request tags (all required) and metadata values matched as strings against globs."""

    tags: frozenset[str] = frozenset()
    match: tuple[tuple[str, GlobSet], ...] = ()

    def matches(self, context: RuleContext) -> bool:
        if not self.tags <= context.tags:
            return False
        metadata = context.metadata
        for key, globs in self.match:
            value = metadata.get(key, _MISSING)
            if value is _MISSING or not globs.matches(str(value)):
                return False
        return True


Condition = (
    RequestCondition | TaskCondition | TokensCondition | BudgetCondition | ScopeCondition | MetadataCondition
)


# --- Actions and rules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SelectModelAction:
    """Constraints for automatic model selection. `cost_limit` is USD per request."""

    budget_scope: str = "tightest"
    quality_requirement: int | str | None = None
    fallback_chain: bool = True
    cost_limit: Decimal | None = None
    strategy: str | None = None
    allowed_models: tuple[str, ...] = ()
    allowed_providers: tuple[str, ...] = ()
    _model_globs: GlobSet | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        globs = GlobSet(tuple(self.allowed_models)) if self.allowed_models else None
        object.__setattr__(self, "_model_globs", globs)

    def allows(self, model_id: str, provider_name: str) -> bool:
        """Whether selection may pick this model; an empty list does not restrict."""
        if self._model_globs is not None and not self._model_globs.matches(model_id):
            return False
        return not self.allowed_providers or provider_name in self.allowed_providers


@dataclass(frozen=True, slots=True)
class RouteToAction:
    model: str
    fallback_chain: bool = True


@dataclass(frozen=True, slots=True)
class DenyAction:
    reason: str
    code: str = "denied_by_rule"


@dataclass(frozen=True)
class Rule:
    """One steering rule: it matches when it is enabled and all its conditions hold."""

    name: str
    priority: int
    line: int
    conditions: tuple[Condition, ...]
    select: SelectModelAction | None
    route_to: RouteToAction | None
    deny: DenyAction | None
    description: str = ""
    enabled: bool = True

    def matches(self, context: RuleContext) -> bool:
        if not self.enabled:
            return False
        return all(condition.matches(context) for condition in self.conditions)


@dataclass(frozen=True)
class RuleSet:
    """Rules in evaluation order: highest priority first, ties in file order (the sort is stable)."""

    rules: tuple[Rule, ...] = ()
    _enabled: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    EMPTY: ClassVar["RuleSet"]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.rules, key=lambda rule: -rule.priority))
        object.__setattr__(self, "rules", ordered)
        object.__setattr__(self, "_enabled", tuple(rule for rule in ordered if rule.enabled))

    def first_match(self, context: RuleContext) -> Rule | None:
        # Inlined rather than calling Rule.matches: this runs on every admitted request.
        for rule in self._enabled:
            for condition in rule.conditions:
                if not condition.matches(context):
                    break
            else:
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)


RuleSet.EMPTY = RuleSet()


# --- Parsing -------------------------------------------------------------------------------------


def parse_rules(text: str, *, known_models: Collection[str] | None = None) -> RuleSet:
    """Validate and compile a rules file, or raise RulesInvalid listing every problem found.

    `known_models`, when given, are the model ids a `route-to` action may name; without it any
    id is accepted (useful when the registry is not at hand, e.g. in a linter)."""
    # A character is at least one byte, so the length alone rejects huge input without encoding it.
    if len(text) > MAX_INPUT_BYTES or len(text.encode("utf-8", errors="replace")) > MAX_INPUT_BYTES:
        message = f"the rules file is larger than {MAX_INPUT_BYTES // 1024} KiB ({MAX_INPUT_BYTES} bytes)"
        raise RulesInvalid([RuleProblem(None, "", message)])
    loader = None
    try:
        loader = _Loader(text)  # already reads the text, refusing unprintable characters
        root = loader.get_single_node()
        checker = _Checker(loader, known_models)
        rules = checker.document(root)
    except yaml.YAMLError as exc:
        raise RulesInvalid([_yaml_error_problem(exc, text)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if checker.problems:
        problems = sorted(checker.problems, key=lambda problem: problem.line or 0)
        raise RulesInvalid(problems)
    return RuleSet(tuple(rules))


class _AliasNode(yaml.ScalarNode):
    """Stands in for a YAML alias, which is reported as a problem rather than followed."""


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer neither follows aliases (no billion laughs) nor recurses without limit."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            return _AliasNode("tag:yaml.org,2002:null", event.anchor, event.start_mark, event.end_mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise _TooDeep(None, None, f"nested deeper than {MAX_NESTING} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_error_problem(exc: yaml.YAMLError, text: str) -> RuleProblem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        if isinstance(exc, _TooDeep):
            return RuleProblem(line, "", f"the YAML is {exc.problem}")
        detail = ", ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        return RuleProblem(line, "", f"invalid YAML: {detail}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return RuleProblem(line, "", f"invalid YAML: {exc.reason} (#x{exc.character:04x})")
    return RuleProblem(None, "", f"invalid YAML: {exc}")


_INVALID: Any = object()  # a value that was reported as a problem; never ends up in a compiled rule

_Check = Callable[[yaml.Node, str], Any]
_Entries = dict[str, tuple[yaml.Node, yaml.Node]]

RULE_KEYS = ("name", "priority", "description", "enabled", "when", "then")
CONDITION_FIELDS = {
    "request": ("path", "model", "priority"),
    "task": ("task_type", "complexity_min", "complexity_max"),
    "tokens": ("min", "max"),
    "budget": ("status", "percent_used_min", "percent_used_max"),
    "scope": ("team", "user", "api_key"),
    "metadata": ("tags", "match"),
}
ACTION_FIELDS = {
    "select-model": (
        "budget_scope",
        "quality_requirement",
        "fallback_chain",
        "cost_limit",
        "strategy",
        "allowed_models",
        "allowed_providers",
    ),
    "route-to": ("model", "fallback_chain"),
    "deny": ("reason", "code"),
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Checker:
    """Walks the composed YAML node tree (not the loaded data, which loses lines and duplicate keys),
    collecting problems and building compiled objects from the parts that are valid."""

    def __init__(self, loader: _Loader, known_models: Collection[str] | None):
        self.loader = loader
        self.known_models = known_models
        self.problems: list[RuleProblem] = []
        self.first_name_nodes: dict[str, yaml.Node] = {}

    def add(self, node: yaml.Node | None, path: str, message: str) -> None:
        self.problems.append(RuleProblem(_line(node) if node is not None else None, path, message))

    def fail(self, node: yaml.Node, path: str, expected: str, value: Any) -> Any:
        self.add(node, path, f"must be {expected}, got {_describe(value)}")
        return _INVALID

    def fail_text(self, node: yaml.Node, path: str, expected: str, value: Any) -> Any:
        """Like fail, with a hint for the classic YAML trap: `team: 42` or `env: no` is not a string."""
        if value is None or isinstance(value, str):
            return self.fail(node, path, expected, value)
        self.add(node, path, f"must be {expected}, got {_describe(value)} (quote it to make it a string)")
        return _INVALID

    # Generic shapes.

    def scalar(self, node: yaml.Node, path: str, expected: str) -> Any:
        if isinstance(node, _AliasNode):
            self.add(node, path, f"YAML aliases are not allowed (*{node.value}); write the value out")
            return _INVALID
        if isinstance(node, yaml.MappingNode):
            self.add(node, path, f"must be {expected}, got a mapping")
            return _INVALID
        if isinstance(node, yaml.SequenceNode):
            self.add(node, path, f"must be {expected}, got a list")
            return _INVALID
        try:
            return self.loader.construct_object(node)
        except Exception:  # an explicit tag (!!int abc, !custom) makes PyYAML raise almost anything
            self.add(node, path, f"unsupported YAML tag or value: {node.tag} {node.value!r}")
            return _INVALID

    def mapping(self, node: yaml.Node, path: str) -> _Entries | None:
        """The mapping's entries by key, or None; duplicate keys are reported and the first kept."""
        if not isinstance(node, yaml.MappingNode):
            value = self.scalar(node, path, "a mapping")
            if value is not _INVALID:
                self.fail(node, path, "a mapping", value)
            return None
        entries: _Entries = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                continue
            if key in entries:
                first = _line(entries[key][0])
                self.add(key_node, _join(path, key), f"duplicate key '{key}' (first on line {first})")
                continue
            entries[key] = (key_node, value_node)
        return entries

    def key(self, node: yaml.Node, path: str) -> str | None:
        if isinstance(node, _AliasNode):
            shown = "an alias"
        elif isinstance(node, yaml.SequenceNode):
            shown = "a list"
        elif isinstance(node, yaml.MappingNode):
            shown = "a mapping"
        else:
            value = self.scalar(node, path, "a string")
            if value is _INVALID:
                return None
            if isinstance(value, str):
                return value
            shown = _describe(value)
        self.add(node, path, f"keys must be strings, got {shown}")
        return None

    def unknown_keys(self, entries: _Entries, path: str, allowed: Sequence[str]) -> None:
        for key, (key_node, _value_node) in entries.items():
            if key not in allowed:
                self.add(key_node, _join(path, key), f"unknown key '{key}'; allowed: {', '.join(allowed)}")

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node] | None:
        if isinstance(node, yaml.SequenceNode):
            return node.value
        value = self.scalar(node, path, "a list")
        if value is not _INVALID:
            self.fail(node, path, "a list", value)
        return None

    def get(self, entries: _Entries, path: str, key: str, check: _Check, default: Any = None) -> Any:
        if key not in entries:
            return default
        return check(entries[key][1], _join(path, key))

    def require(self, entries: _Entries, node: yaml.Node, path: str, key: str, check: _Check) -> Any:
        if key not in entries:
            self.add(node, _join(path, key), "is required")
            return _INVALID
        return check(entries[key][1], _join(path, key))

    # Values.

    def string(
        self, node: yaml.Node, path: str, *, pattern: re.Pattern[str] | None = None, expected: str = ""
    ) -> Any:
        expected = expected or f"a non-empty string of at most {MAX_TEXT_LENGTH} characters"
        value = self.scalar(node, path, expected)
        if value is _INVALID:
            return _INVALID
        valid = isinstance(value, str) and 0 < len(value) <= MAX_TEXT_LENGTH
        if not valid or (pattern is not None and not pattern.fullmatch(value)):
            return self.fail_text(node, path, expected, value)
        return value

    def text(self, node: yaml.Node, path: str) -> Any:
        """Free text that may be empty (a description)."""
        value = self.scalar(node, path, "a string")
        if value is _INVALID:
            return _INVALID
        return value if isinstance(value, str) else self.fail_text(node, path, "a string", value)

    def boolean(self, node: yaml.Node, path: str) -> Any:
        value = self.scalar(node, path, "true or false")
        if value is _INVALID:
            return _INVALID
        return value if isinstance(value, bool) else self.fail(node, path, "true or false", value)

    def integer(self, node: yaml.Node, path: str, *, low: int, high: int, expected: str) -> Any:
        value = self.scalar(node, path, expected)
        if value is _INVALID:
            return _INVALID
        # bool is an int in Python, but `priority: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return self.fail(node, path, expected, value)
        return value

    def number(
        self,
        node: yaml.Node,
        path: str,
        *,
        low: Decimal,
        high: Decimal | None,
        expected: str,
        open_low: bool = False,
    ) -> Any:
        """A YAML int or float as an exact Decimal (via str(), so 0.1 stays 0.1)."""
        value = self.scalar(node, path, expected)
        if value is _INVALID:
            return _INVALID
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return self.fail(node, path, expected, value)
        amount = Decimal(str(value))
        too_low = amount <= low if open_low else amount < low
        if too_low or (high is not None and amount > high):
            return self.fail(node, path, expected, value)
        return amount

    def choice(self, node: yaml.Node, path: str, choices: Sequence[str]) -> Any:
        expected = f"one of {', '.join(choices)}"
        value = self.scalar(node, path, expected)
        if value is _INVALID:
            return _INVALID
        return (
            value if isinstance(value, str) and value in choices else self.fail(node, path, expected, value)
        )

    def list_of(self, node: yaml.Node, path: str, item: _Check) -> Any:
        """A non-empty list whose items all pass `item`, as a tuple."""
        children = self.sequence(node, path)
        if children is None:
            return _INVALID
        if not children:
            self.add(node, path, "must not be an empty list")
            return _INVALID
        values = [item(child, f"{path}[{index}]") for index, child in enumerate(children)]
        return _INVALID if any(value is _INVALID for value in values) else tuple(values)

    def one_or_list(self, node: yaml.Node, path: str, item: _Check) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return self.list_of(node, path, item)
        value = item(node, path)
        return _INVALID if value is _INVALID else (value,)

    def globs(self, node: yaml.Node, path: str) -> Any:
        values = self.one_or_list(node, path, self.string)
        return _INVALID if values is _INVALID else GlobSet(values)

    def choices(self, node: yaml.Node, path: str, choices: Sequence[str]) -> Any:
        values = self.one_or_list(node, path, lambda child, at: self.choice(child, at, choices))
        return _INVALID if values is _INVALID else frozenset(values)

    def names(self, node: yaml.Node, path: str) -> Any:
        values = self.one_or_list(node, path, self.string)
        return _INVALID if values is _INVALID else frozenset(values)

    def ordered(self, entries: _Entries, path: str, low_key: str, low: Any, high_key: str, high: Any) -> None:
        if low is None or high is None or low is _INVALID or high is _INVALID:
            return
        if low > high:
            self.add(
                entries[low_key][1], _join(path, low_key), f"must not be greater than {high_key} ({high})"
            )

    # The document.

    def document(self, root: yaml.Node | None) -> list[Rule]:
        if root is None:
            self.add(None, "", "the rules file is empty; expected a mapping with a 'rules' list")
            return []
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            self.add(root, "", f"the top level must be a mapping with a 'rules' list, got {kind}")
            return []
        entries = self.mapping(root, "") or {}
        self.unknown_keys(entries, "", ("version", "rules"))
        self.get(entries, "", "version", self.version)
        rule_nodes = self.require(entries, root, "", "rules", self.sequence)
        if rule_nodes is _INVALID or rule_nodes is None:
            return []
        if len(rule_nodes) > MAX_RULES:
            self.add(entries["rules"][1], "rules", f"too many rules: {len(rule_nodes)}; at most {MAX_RULES}")
        compiled = [self.rule(node, f"rules[{index}]") for index, node in enumerate(rule_nodes)]
        return [rule for rule in compiled if rule is not None]

    def unique_name(self, name: str, node: yaml.Node, path: str) -> None:
        first = self.first_name_nodes.setdefault(name, node)
        if first is not node:
            self.add(node, path, f"duplicate rule name '{name}' (first on line {_line(first)})")

    def version(self, node: yaml.Node, path: str) -> Any:
        return self.integer(node, path, low=1, high=1_000_000, expected="a positive integer")

    def rule(self, node: yaml.Node, path: str) -> Rule | None:
        before = len(self.problems)
        entries = self.mapping(node, path)
        if entries is None:
            return None
        self.unknown_keys(entries, path, RULE_KEYS)
        name = self.require(
            entries,
            node,
            path,
            "name",
            lambda child, at: self.string(
                child,
                at,
                pattern=RULE_NAME,
                expected="a name of 1-100 letters, digits, '-', '_' or '.'",
            ),
        )
        if name is not _INVALID:
            self.unique_name(name, entries["name"][1], f"{path}.name")
        priority = self.get(
            entries,
            path,
            "priority",
            lambda child, at: self.integer(
                child, at, low=-1_000_000, high=1_000_000, expected="an integer from -1000000 to 1000000"
            ),
            default=0,
        )
        description = self.get(entries, path, "description", self.text, default="")
        enabled = self.get(entries, path, "enabled", self.boolean, default=True)
        conditions = self.get(entries, path, "when", self.conditions, default=())
        actions = self.require(entries, node, path, "then", self.actions)
        if len(self.problems) > before:
            return None
        return Rule(
            name=name,
            priority=priority,
            line=_line(node),
            conditions=conditions,
            select=actions.get("select-model"),
            route_to=actions.get("route-to"),
            deny=actions.get("deny"),
            description=description,
            enabled=enabled,
        )

    # Conditions.

    def conditions(self, node: yaml.Node, path: str) -> Any:
        children = self.sequence(node, path)
        if children is None:
            return _INVALID
        compiled = [self.condition(child, f"{path}[{index}]") for index, child in enumerate(children)]
        return _INVALID if any(condition is None for condition in compiled) else tuple(compiled)

    def typed_entries(
        self, node: yaml.Node, path: str, kinds: Mapping[str, Sequence[str]], what: str
    ) -> tuple[str, _Entries] | None:
        """(type, entries) of a condition or action whose `type` and keys are valid, else None."""
        entries = self.mapping(node, path)
        if entries is None:
            return None
        if "type" not in entries:
            self.add(node, f"{path}.type", f"is required; one of {', '.join(kinds)}")
            return None
        type_node = entries["type"][1]
        kind = self.scalar(type_node, f"{path}.type", f"a {what} type")
        if kind is _INVALID:
            return None
        if not isinstance(kind, str) or kind not in kinds:
            self.add(
                type_node,
                f"{path}.type",
                f"unknown {what} type {_describe(kind)}; allowed: {', '.join(kinds)}",
            )
            return None
        fields = kinds[kind]
        self.unknown_keys(entries, path, ("type", *fields))
        if not any(key in entries for key in fields):
            self.add(node, path, f"a '{kind}' {what} needs at least one of: {', '.join(fields)}")
            return None
        return kind, entries

    def condition(self, node: yaml.Node, path: str) -> Condition | None:
        before = len(self.problems)
        typed = self.typed_entries(node, path, CONDITION_FIELDS, "condition")
        if typed is None:
            return None
        kind, entries = typed
        build = {
            "request": self.request_condition,
            "task": self.task_condition,
            "tokens": self.tokens_condition,
            "budget": self.budget_condition,
            "scope": self.scope_condition,
            "metadata": self.metadata_condition,
        }[kind]
        condition = build(entries, path)
        return condition if len(self.problems) == before else None

    def request_condition(self, entries: _Entries, path: str) -> Any:
        return RequestCondition(
            paths=self.get(entries, path, "path", self.globs),
            models=self.get(entries, path, "model", self.globs),
            priorities=self.get(
                entries, path, "priority", lambda node, at: self.choices(node, at, REQUEST_PRIORITIES)
            ),
        )

    def task_condition(self, entries: _Entries, path: str) -> Any:
        def fraction(node: yaml.Node, at: str) -> Any:
            return self.number(node, at, low=Decimal(0), high=Decimal(1), expected="a number from 0 to 1")

        task_types = self.get(entries, path, "task_type", lambda node, at: self.choices(node, at, TASK_TYPES))
        low = self.get(entries, path, "complexity_min", fraction)
        high = self.get(entries, path, "complexity_max", fraction)
        self.ordered(entries, path, "complexity_min", low, "complexity_max", high)
        return TaskCondition(
            task_types=task_types,
            complexity_min=float(low) if isinstance(low, Decimal) else None,
            complexity_max=float(high) if isinstance(high, Decimal) else None,
        )

    def tokens_condition(self, entries: _Entries, path: str) -> Any:
        def count(node: yaml.Node, at: str) -> Any:
            return self.integer(node, at, low=0, high=10**12, expected="a non-negative integer")

        low = self.get(entries, path, "min", count)
        high = self.get(entries, path, "max", count)
        self.ordered(entries, path, "min", low, "max", high)
        return TokensCondition(min=low, max=high)

    def budget_condition(self, entries: _Entries, path: str) -> Any:
        def percent(node: yaml.Node, at: str) -> Any:
            return self.number(
                node, at, low=Decimal(0), high=Decimal(1000), expected="a number from 0 to 1000"
            )

        statuses = self.get(entries, path, "status", lambda node, at: self.choices(node, at, BUDGET_STATUSES))
        low = self.get(entries, path, "percent_used_min", percent)
        high = self.get(entries, path, "percent_used_max", percent)
        self.ordered(entries, path, "percent_used_min", low, "percent_used_max", high)
        return BudgetCondition(statuses=statuses, percent_used_min=low, percent_used_max=high)

    def scope_condition(self, entries: _Entries, path: str) -> Any:
        return ScopeCondition(
            teams=self.get(entries, path, "team", self.names),
            users=self.get(entries, path, "user", self.names),
            api_keys=self.get(entries, path, "api_key", self.names),
        )

    def metadata_condition(self, entries: _Entries, path: str) -> Any:
        tags = self.get(
            entries, path, "tags", lambda node, at: self.list_of(node, at, self.string), default=()
        )
        match = self.get(entries, path, "match", self.metadata_match, default=())
        if tags is _INVALID or match is _INVALID:
            return None
        return MetadataCondition(tags=frozenset(tags), match=match)

    def metadata_match(self, node: yaml.Node, path: str) -> Any:
        entries = self.mapping(node, path)
        if entries is None:
            return _INVALID
        if not entries:
            self.add(node, path, "must not be an empty mapping")
            return _INVALID
        pairs = []
        for key, (_key_node, value_node) in entries.items():
            value = self.string(value_node, _join(path, key))
            if value is not _INVALID:
                pairs.append((key, GlobSet((value,))))
        return tuple(pairs) if len(pairs) == len(entries) else _INVALID

    # Actions.

    def actions(self, node: yaml.Node, path: str) -> Any:
        """The rule's actions by type; at most one of each, and a deny stands alone."""
        children = self.sequence(node, path)
        if children is None:
            return _INVALID
        if not children:
            self.add(node, path, "must have at least one action")
            return _INVALID
        before = len(self.problems)
        by_type: dict[str, Any] = {}
        deny_at: tuple[yaml.Node, str] | None = None
        for index, child in enumerate(children):
            at = f"{path}[{index}]"
            parsed = self.action(child, at)
            if parsed is None:
                continue
            kind, action = parsed
            if kind in by_type:
                self.add(child, at, f"duplicate action '{kind}'; a rule takes at most one of each type")
                continue
            by_type[kind] = action
            if kind == "deny":
                deny_at = (child, at)
        if deny_at is not None and len(by_type) > 1:
            self.add(deny_at[0], deny_at[1], "deny cannot be combined with other actions")
        return by_type if len(self.problems) == before else _INVALID

    def action(self, node: yaml.Node, path: str) -> tuple[str, Any] | None:
        before = len(self.problems)
        typed = self.typed_entries(node, path, ACTION_FIELDS, "action")
        if typed is None:
            return None
        kind, entries = typed
        build = {
            "select-model": self.select_model_action,
            "route-to": self.route_to_action,
            "deny": self.deny_action,
        }[kind]
        action = build(node, entries, path)
        return (kind, action) if len(self.problems) == before else None

    def select_model_action(self, node: yaml.Node, entries: _Entries, path: str) -> Any:
        values = {
            "budget_scope": self.get(
                entries,
                path,
                "budget_scope",
                lambda child, at: self.choice(child, at, BUDGET_SCOPES),
                "tightest",
            ),
            "quality_requirement": self.get(entries, path, "quality_requirement", self.quality_requirement),
            "fallback_chain": self.get(entries, path, "fallback_chain", self.boolean, True),
            "cost_limit": self.get(
                entries,
                path,
                "cost_limit",
                lambda child, at: self.number(
                    child, at, low=Decimal(0), high=None, expected="a positive number", open_low=True
                ),
            ),
            "strategy": self.get(
                entries, path, "strategy", lambda child, at: self.choice(child, at, STRATEGIES)
            ),
            "allowed_models": self.get(
                entries, path, "allowed_models", lambda child, at: self.list_of(child, at, self.string), ()
            ),
            "allowed_providers": self.get(
                entries, path, "allowed_providers", lambda child, at: self.list_of(child, at, self.string), ()
            ),
        }
        if any(value is _INVALID for value in values.values()):
            return None
        return SelectModelAction(**values)

    def quality_requirement(self, node: yaml.Node, path: str) -> Any:
        expected = f"one of {', '.join(QUALITY_LEVELS)} or an integer from 0 to 100"
        value = self.scalar(node, path, expected)
        if value is _INVALID:
            return _INVALID
        if isinstance(value, str) and value in QUALITY_LEVELS:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
            return value
        return self.fail(node, path, expected, value)

    def route_to_action(self, node: yaml.Node, entries: _Entries, path: str) -> Any:
        model = self.require(entries, node, path, "model", self.string)
        fallback_chain = self.get(entries, path, "fallback_chain", self.boolean, True)
        if model is not _INVALID and self.known_models is not None and model not in self.known_models:
            self.add(entries["model"][1], f"{path}.model", f"unknown model {_describe(model)}")
            return None
        if model is _INVALID or fallback_chain is _INVALID:
            return None
        return RouteToAction(model=model, fallback_chain=fallback_chain)

    def deny_action(self, node: yaml.Node, entries: _Entries, path: str) -> Any:
        reason = self.require(entries, node, path, "reason", self.string)
        code = self.get(
            entries,
            path,
            "code",
            lambda child, at: self.string(
                child, at, pattern=DENY_CODE, expected="a lowercase snake_case code of at most 64 characters"
            ),
            "denied_by_rule",
        )
        if reason is _INVALID or code is _INVALID:
            return None
        return DenyAction(reason=reason, code=code)
