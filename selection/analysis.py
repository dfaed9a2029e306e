"""Request analysis: what a chat request asks for (task type), how hard it is (complexity 0..1),
and what a model must support to answer it (tools, vision, JSON).

Deliberately cheap and explainable: weighted cue patterns over the last user turn (the instruction
that decides the task) and the rest of the conversation, plus structural signals (code fences,
equations, pasted documents, numbered steps, tool definitions). Every score comes back with the
features behind it, so the explainer can show why a request was read the way it was.
"""

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models_registry.choices import TaskType

# A class needs at least this much evidence to beat the "chat" default.
MIN_TASK_SCORE = 1.0


def _cues(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# (pattern, weight) per task type, matched on the instruction (last user message). The weights say
# how strongly a cue alone points at the class: "translate" is nearly decisive, "list" is not.
TASK_CUES: dict[str, list[tuple[re.Pattern, float]]] = {
    TaskType.CODE: [
        (
            _cues(
                r"\b(write|implement|refactor|debug|fix|optimi[sz]e|review|port|convert)\b[^.?!\n]{0,60}"
                r"\b(code|function|class|method|script|program|query|endpoint|regex|test|module|component|bug)"
            ),
            2.5,
        ),
        (
            _cues(
                r"\b(python|javascript|typescript|java|golang|rust|c\+\+|c#|kotlin|swift|ruby|php|bash|sql|"
                r"html|css|react|django|node\.?js|dockerfile|kubernetes|yaml|terraform|pandas|numpy)\b"
            ),
            1.2,
        ),
        (
            _cues(
                r"\b(stack ?trace|traceback|exception|segfault|compile[rd]?|syntax error|null pointer|"
                r"unit tests?|pull request|git |api endpoint|regex|regular expression|sql query)\b"
            ),
            1.5,
        ),
        (
            _cues(
                r"\b(function|variable|loop|array|algorithm|recursion|class|method|library|framework|"
                r"repository|deploy|runtime|async|thread)\b"
            ),
            0.6,
        ),
        (_cues(r"\bin (?:go|rust|java|python|c|c\+\+|ruby|scala|elixir)\b"), 1.2),
    ],
    TaskType.MATH: [
        (
            _cues(
                r"\b(solve|calculate|compute|evaluate|simplify|factor(?:i[sz]e)?|differentiate|integrate|"
                r"derive the formula)\b"
            ),
            1.5,
        ),
        (
            _cues(
                r"\b(equation|integral|derivative|matrix|eigen\w*|probability|expected value|variance|"
                r"standard deviation|polynomial|theorem|prime|logarithm|modulo|geometric|arithmetic|"
                r"percent(?:age)?|fraction|sum of|limit of|quadratic|triangle|radius|area of|volume of)\b"
            ),
            1.3,
        ),
        (
            _cues(
                r"\bprove (?:that|it)\b",
                r"\bhow many\b",
                r"\bwhat is \d",
                r"\d+\s*[-+*/^\u00d7\u00f7]\s*\d+",
                r"\\(?:frac|int|sum|sqrt|lim)\b",
                r"[∫√∑π≤≥]",
            ),
            1.2,
        ),
    ],
    TaskType.REASONING: [
        (
            _cues(
                r"\b(puzzle|riddle|logic(?:al)?|deduce|infer|paradox|syllogism|which (?:one )?is lying|"
                r"knights? and knaves?)\b"
            ),
            2.0,
        ),
        (
            _cues(
                r"\b(trade-?offs?|pros and cons|should (?:i|we)|which (?:option|approach|is better)|"
                r"compare|evaluate (?:the|whether)|decide|decision|weigh|root cause|why (?:did|does|would)|"
                r"what would happen|implications?|strategy|prioriti[sz]e|plan (?:for|how))\b"
            ),
            1.1,
        ),
        (
            _cues(
                r"\bwhich (?:box|door|person|one|of them|of these) (?:should|must|is|was|did)\b",
                r"\bhow (?:can|could|would) (?:you|we|i|they) "
                r"(?:determine|figure out|tell|be sure|guarantee)\b",
                r"\b(?:minimum|fewest|maximum) number of\b",
                r"\bwho (?:is|was|did|owns|lives)\b[^?]*\?",
            ),
            1.4,
        ),
        (
            _cues(
                r"\bstep[- ]by[- ]step\b",
                r"\bthink (?:carefully|through)\b",
                r"\breason(?:ing)?\b",
                r"\bjustify\b",
                r"\bargue\b",
                r"\bassum(?:e|ption)s?\b",
            ),
            0.9,
        ),
    ],
    TaskType.SUMMARIZATION: [
        (
            _cues(
                r"\b(summari[sz]e|summary|summarise|tl;?dr|recap|condense|boil (?:it|this) down|"
                r"key (?:points|takeaways)|main points|gist|executive summary|in (?:one|two|three|a few|\d+) "
                r"(?:sentences?|bullets?|bullet points|lines|words))\b"
            ),
            3.0,
        ),
        (
            _cues(
                r"\b(r[ée]sum[ée]|zusammenfass\w*|resumen|resuma|riassun\w*)\b", r"要約|总结|概括|摘要|요약"
            ),
            3.0,
        ),
        (_cues(r"\b(shorten|brief(?:ly)? overview|highlights|what (?:is|was) (?:this|it) about)\b"), 1.2),
    ],
    TaskType.EXTRACTION: [
        (
            _cues(
                r"\b(extract|pull out|parse|itemi[sz]e|identify all|find all|list (?:all|every|the) "
                r"(?:names|dates|amounts|entities|emails|people|companies|fields|items))\b"
            ),
            2.5,
        ),
        (
            _cues(
                r"\b(json|csv|key-value|fields?|schema|structured|entities|named entit\w+|"
                r"table with columns)\b"
            ),
            1.2,
        ),
        (_cues(r"\b(classify|categori[sz]e|label|tag (?:each|the|this)|sentiment|which category)\b"), 1.6),
        (_cues(r"\b(invoice|receipt|resume|cv|log lines?|purchase order)\b"), 0.6),
    ],
    TaskType.TRANSLATION: [
        (
            _cues(
                r"\btranslat\w*\b",
                r"\b(traduc\w*|tradu[iz]\w*|übersetz\w*|traduis\w*|tradurre|traduz\w*|"
                r"перевед\w*|перевод\w*)\b",
                r"翻译|翻訳|번역|ترجم",
            ),
            4.0,
        ),
        (
            _cues(
                r"\b(?:in|into|to) (?:english|french|german|spanish|italian|portuguese|japanese|chinese|"
                r"mandarin|korean|russian|arabic|hindi|dutch|polish|turkish|swedish|vietnamese|thai|greek|"
                r"hebrew|ukrainian|indonesian)\b"
            ),
            1.6,
        ),
        (_cues(r"\b(localis|localiz)\w*\b"), 1.5),
    ],
    TaskType.CREATIVE: [
        (
            _cues(
                r"\b(poem|poetry|haiku|sonnet|limerick|lyrics|song|story|short story|fairy tale|fable|"
                r"screenplay|script for a|monologue|dialogue between|novel|chapter|verse|rap|ballad)\b"
            ),
            2.5,
        ),
        (
            _cues(
                r"\b(slogan|tagline|jingle|catchphrase|marketing copy|ad copy|product description|"
                r"(?:names?|titles?) (?:ideas )?for|brainstorm|pun|joke|toast|wedding speech|greeting card|"
                r"worldbuilding|fictional|character|plot|imagine)\b"
            ),
            1.6,
        ),
        (
            _cues(
                r"\b(write|compose|craft|create|invent)\b[^.?!\n]{0,40}\b(creative|funny|witty|whimsical|"
                r"rhym\w*|epic|spooky|heartfelt)\b",
                r"\bonce upon a time\b",
                r"\bin the style of\b",
                r"\b(po[èe]me|gedicht|poema|histoire|geschichte|cuento)\b",
                r"写一首|詩|诗",
            ),
            1.6,
        ),
    ],
}
# Cues in earlier turns and system prompts count for less than the instruction itself.
CONTEXT_WEIGHT = 0.3

CODE_FENCE = re.compile(r"```")
CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|function |const |let |var |public |private |#include|"
    r"SELECT |INSERT |UPDATE |CREATE TABLE|return\b|if \(|for \(|while \(|\}|\{$|<\w+[^>]*>$)|;\s*$|=>",
    re.MULTILINE,
)
TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|^\s+at [\w.$]+\(|Error: |Exception:", re.MULTILINE
)
EQUATION = re.compile(r"(?:\d|\b[a-z]\b)\s*(?:[-+*/^=<>]|\*\*)\s*(?:\d|\b[a-z]\b|\()|\\[a-z]+\{|\$[^$\n]+\$")
NUMBERED_STEP = re.compile(r"^\s*(?:\d+[.)]|[-*•]|step \d+)\s+\S", re.MULTILINE | re.IGNORECASE)
CONSTRAINT = re.compile(
    r"\b(must|should|make sure|ensure|without|at least|at most|no more than|exactly|only|avoid|"
    r"handle|edge cases?|constraints?|requirements?|also|then)\b",
    re.IGNORECASE,
)
DEMANDING = re.compile(
    r"\b(prove|derive|design|architect\w*|optimi[sz]e|rigorous\w*|in depth|in detail|comprehensive|"
    r"detailed|thorough\w*|analy[sz]e|trade-?offs?|scal\w+|concurren\w+|distributed|edge cases?|"
    r"formal\w*|step[- ]by[- ]step|multi-step|complex)\b",
    re.IGNORECASE,
)
TRIVIAL = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|okay|good (?:morning|night)|bonjour|hola)\b", re.IGNORECASE
)
# Base difficulty per task type: translating a line is easier than a proof.
TASK_BASE_COMPLEXITY = {
    TaskType.CHAT: 0.05,
    TaskType.CODE: 0.25,
    TaskType.MATH: 0.25,
    TaskType.REASONING: 0.3,
    TaskType.SUMMARIZATION: 0.1,
    TaskType.EXTRACTION: 0.1,
    TaskType.TRANSLATION: 0.05,
    TaskType.CREATIVE: 0.1,
}
IMAGE_PART_TYPES = {"image_url", "image", "input_image"}
JSON_RESPONSE_TYPES = {"json_object", "json_schema"}


@dataclass(frozen=True)
class RequestAnalysis:
    """What the selection engine knows about a request before looking at any model."""

    task_type: str
    task_type_source: str  # "given" or "detected"
    task_scores: dict[str, float]
    complexity: float
    required_capabilities: frozenset[str]
    features: dict[str, Any] = field(default_factory=dict)

    def explain(self) -> dict:
        return {
            "task_type": self.task_type,
            "task_type_source": self.task_type_source,
            "task_scores": self.task_scores,
            "complexity": self.complexity,
            "required_capabilities": sorted(self.required_capabilities),
            "features": self.features,
        }


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def analyze_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
    task_type: str | None = None,
) -> RequestAnalysis:
    """Classify the request and score its difficulty. A task type the caller names is trusted
    (the scores are still computed, so the explainer can show whether the detector agreed)."""
    user_turns = [m for m in messages if m.get("role") == "user"]
    instruction = message_text(user_turns[-1]) if user_turns else ""
    context = "\n".join(
        message_text(m) for m in messages if m is not (user_turns[-1] if user_turns else None)
    )
    scores = _task_scores(instruction, context)
    detected = (
        max(scores, key=scores.get) if scores and max(scores.values()) >= MIN_TASK_SCORE else TaskType.CHAT
    )
    chosen = task_type or detected

    features = _features(messages, instruction, user_turns, tools)
    capabilities = set()
    if tools:
        capabilities.add("tools")
    if features["images"]:
        capabilities.add("vision")
    if response_format and response_format.get("type") in JSON_RESPONSE_TYPES:
        capabilities.add("json")
    features["detected_task_type"] = detected
    return RequestAnalysis(
        task_type=chosen,
        task_type_source="given" if task_type else "detected",
        task_scores={k: round(v, 2) for k, v in sorted(scores.items(), key=lambda kv: -kv[1]) if v > 0},
        complexity=_complexity(chosen, features),
        required_capabilities=frozenset(capabilities),
        features=features,
    )


def _task_scores(instruction: str, context: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for task, cues in TASK_CUES.items():
        score = 0.0
        for pattern, weight in cues:
            if pattern.search(instruction):
                score += weight
            elif context and pattern.search(context):
                score += weight * CONTEXT_WEIGHT
        scores[str(task)] = score
    # Structure speaks too: code in the instruction, an equation, a long pasted document.
    code_lines = len(CODE_LINE.findall(instruction))
    if CODE_FENCE.search(instruction) or code_lines >= 3 or TRACEBACK.search(instruction):
        scores[TaskType.CODE] += 1.5
    if len(EQUATION.findall(instruction)) >= 2 and code_lines < 3:
        scores[TaskType.MATH] += 1.0
    words = len(instruction.split())
    if words > 150 and scores[TaskType.SUMMARIZATION] > 0:
        scores[TaskType.SUMMARIZATION] += 1.0
    if words > 150 and scores[TaskType.EXTRACTION] > 0:
        scores[TaskType.EXTRACTION] += 0.5
    return scores


def _features(
    messages: Sequence[Mapping[str, Any]],
    instruction: str,
    user_turns: list,
    tools: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    total_chars = sum(len(message_text(m)) for m in messages)
    return {
        "instruction_words": len(instruction.split()),
        "total_chars": total_chars,
        "turns": len(user_turns),
        "code_blocks": len(CODE_FENCE.findall(instruction)) // 2,
        "code_lines": len(CODE_LINE.findall(instruction)),
        "equations": len(EQUATION.findall(instruction)),
        "steps": len(NUMBERED_STEP.findall(instruction)),
        "constraints": len(CONSTRAINT.findall(instruction)),
        "demanding_terms": len(DEMANDING.findall(instruction)),
        "questions": instruction.count("?"),
        "trivial": bool(TRIVIAL.match(instruction)) and len(instruction.split()) <= 8,
        "tools": len(tools or ()),
        "images": sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if isinstance(part, Mapping) and part.get("type") in IMAGE_PART_TYPES
        ),
    }


def _saturating(value: float, half: float) -> float:
    """0 at 0, 0.5 at `half`, approaching 1: more of a signal helps less and less."""
    return value / (value + half) if value > 0 else 0.0


def _complexity(task_type: str, features: dict[str, Any]) -> float:
    """A weighted sum of saturating signals, 0..1. The weights make a long multi-step design task
    with code and tools approach 1, and a greeting stay near 0."""
    if features["trivial"]:
        return 0.0
    length = math.log10(1 + features["total_chars"]) / 5  # 100k characters -> 1
    score = (
        TASK_BASE_COMPLEXITY.get(task_type, 0.1)
        + 0.20 * min(length, 1.0)
        + 0.12 * _saturating(features["code_blocks"] + features["code_lines"] / 10, 1)
        + 0.08 * _saturating(features["equations"], 2)
        + 0.15 * _saturating(features["steps"] + features["constraints"] / 2, 4)
        + 0.18 * _saturating(features["demanding_terms"], 1.5)
        + 0.07 * _saturating(features["tools"], 2)
        + 0.06 * _saturating(max(features["turns"] - 1, 0), 3)
        + 0.04 * _saturating(max(features["questions"] - 1, 0), 2)
    )
    return round(min(max(score, 0.0), 1.0), 3)
