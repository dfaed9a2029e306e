"""analyze_request(): task type, complexity and required capabilities. Pure Python, no database."""

import json
import math
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models_registry.choices import TaskType
from selection.analysis import analyze_request

DEV_SET = Path(__file__).resolve().parents[1] / "data" / "task_prompts_dev.jsonl"
# What the analyzer reached on the dev set when this floor was set (overall 0.988, validation split
# 0.986), minus a few points: a change that loses more than that is a regression, not noise.
DEV_ACCURACY_FLOOR = 0.95
DEV_VALIDATION_ACCURACY_FLOOR = 0.93
TOOL = {"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _detected(text: str) -> str:
    return analyze_request(_user(text)).task_type


REPRESENTATIVE = {
    TaskType.CHAT: [
        "hey, how's your day going?",
        "What's a nice city for a weekend away from Madrid in November?",
        "My flatmate keeps eating my food. Any advice on bringing it up without drama?",
    ],
    TaskType.CODE: [
        "Write a TypeScript function that groups an array of objects by a key and returns a Map.",
        "Why does this fail?\n\n```python\nfor i in range(len(items)):\n    items.remove(items[i])\n```",
        "IndexError: list index out of range - I get this when my loop removes elements. How do I fix it?",
    ],
    TaskType.MATH: [
        "Solve 2x^2 - 8x + 6 = 0 and show the steps.",
        "A tank holds 1,200 litres and drains at 15 litres per minute. How long until it is a quarter full?",
        "What is the probability of getting exactly two heads in five coin tosses?",
    ],
    TaskType.REASONING: [
        "Should we migrate our app from Heroku to AWS now or wait until after our funding round? "
        "Weigh cost, risk and team time.",
        "Anna is older than Ben, Ben is older than Cleo, and Cleo is older than Dan. Who is the youngest?",
        "Plan a three-day itinerary for Rome that balances museums, food and rest for two older travellers.",
    ],
    TaskType.SUMMARIZATION: [
        "Summarize this in two sentences:\n\nThe library board voted to extend opening hours on weekdays "
        "until 9pm from next month. The change follows a survey in which most members asked for evening "
        "access, and will be funded by closing one branch on Sunday mornings.",
        "tl;dr please: The update fixes the login loop on Android 14, adds offline mode for saved "
        "articles, and removes the old reading-list widget, which almost nobody used.",
    ],
    TaskType.EXTRACTION: [
        "Extract the sender, date and total amount from this receipt as JSON:\n\nCorner Deli, 14 Oct 2024, "
        "2x bagel 7.00, 1x coffee 3.20, total 10.20 EUR",
        "Classify each message as spam or not spam:\n1. You won a free cruise!\n2. Lunch at noon tomorrow?",
    ],
    TaskType.TRANSLATION: [
        "Translate into German: 'Your package will arrive on Tuesday.'",
        "¿Cómo se dice 'I missed the bus' en inglés?",
        "Traduis en espagnol : « Merci pour votre aide, à demain. »",
    ],
    TaskType.CREATIVE: [
        "Write a short poem about a lighthouse keeper's last night on duty.",
        "Give me five slogan ideas for a bike repair shop.",
        "Write a bedtime story about a penguin who wants to fly.",
    ],
}


@pytest.mark.parametrize(
    ("task_type", "text"), [(task, text) for task, texts in REPRESENTATIVE.items() for text in texts]
)
def test_it_detects_the_task_a_request_asks_for(task_type, text):
    assert _detected(text) == task_type


def test_numbers_in_a_pasted_invoice_do_not_make_it_maths():
    invoice = (
        "Pull the supplier, invoice number and line items into JSON:\n\nINVOICE 2024-117\nNordlicht GmbH\n"
        "3 x Desk lamp  29.90  89.70\n2 x Monitor arm  45.00  90.00\nSubtotal 179.70\nVAT 19% 34.14\n"
        "Total 213.84 EUR"
    )
    analysis = analyze_request(_user(invoice))
    assert analysis.task_type == TaskType.EXTRACTION
    assert analysis.features["document_words"] > 0


def test_the_instruction_after_a_pasted_document_decides():
    article = (
        "The city council approved a plan on Monday to turn the old harbour warehouses into 400 homes, "
        "a school and a public park. Construction is due to start in 2026 and the first flats should be "
        "ready two years later. Opponents say the plan has too little social housing and want a "
        "referendum; the council says 30 percent of the homes will be affordable."
    )
    assert _detected(f"{article}\n\nWhat's the short version?") == TaskType.SUMMARIZATION
    assert _detected(f"{article}\n\nPut that into French, please.") == TaskType.TRANSLATION


def test_a_follow_up_inherits_the_task_of_the_conversation():
    messages = [
        {"role": "user", "content": "Translate 'good morning' into Italian."},
        {"role": "assistant", "content": "Buongiorno."},
        {"role": "user", "content": "and into Portuguese?"},
    ]
    assert analyze_request(messages).task_type == TaskType.TRANSLATION


def test_small_talk_after_a_task_is_chat():
    messages = [
        {"role": "user", "content": "Write a haiku about snow."},
        {"role": "assistant", "content": "Soft white silence falls..."},
        {"role": "user", "content": "thanks, that was lovely"},
    ]
    assert analyze_request(messages).task_type == TaskType.CHAT


def test_a_system_prompt_sets_the_task_for_pasted_material():
    messages = [
        {"role": "system", "content": "Translate everything the user sends into Spanish."},
        {
            "role": "user",
            "content": "The meeting room on the third floor is closed for repairs until Friday.",
        },
    ]
    assert analyze_request(messages).task_type == TaskType.TRANSLATION


def test_a_given_task_type_is_trusted_and_reported_as_given():
    analysis = analyze_request(_user("Write a limerick about a cat."), task_type=TaskType.MATH)
    assert analysis.task_type == TaskType.MATH
    assert analysis.task_type_source == "given"
    assert analysis.features["detected_task_type"] == TaskType.CREATIVE
    assert analysis.task_scores[TaskType.CREATIVE] > 0


def test_a_detected_task_type_is_reported_as_detected():
    analysis = analyze_request(_user("Write a limerick about a cat."))
    assert (analysis.task_type, analysis.task_type_source) == (TaskType.CREATIVE, "detected")


def test_sending_tools_requires_tool_support():
    analysis = analyze_request(_user("Where is my order 1182?"), tools=[TOOL])
    assert analysis.required_capabilities == {"tools"}
    assert analysis.features["tools"] == 1


def test_an_image_part_requires_vision():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What breed is this dog?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg"}},
            ],
        }
    ]
    assert analyze_request(messages).required_capabilities == {"vision"}


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
def test_a_json_response_format_requires_json_mode(kind):
    analysis = analyze_request(_user("List three colours."), response_format={"type": kind})
    assert analysis.required_capabilities == {"json"}


def test_a_plain_text_request_requires_nothing():
    analysis = analyze_request(_user("List three colours."), response_format={"type": "text"})
    assert analysis.required_capabilities == frozenset()


def test_complexity_grows_from_a_greeting_to_a_long_design_task():
    greeting = analyze_request(_user("hello!")).complexity
    question = analyze_request(_user("What is the boiling point of water at sea level?")).complexity
    design = analyze_request(
        _user(
            "Design a multi-tenant job scheduler in Python. Requirements:\n"
            "1. Jobs are stored in Postgres and picked up with SELECT ... FOR UPDATE SKIP LOCKED.\n"
            "2. Each tenant has a concurrency limit that must be respected across several workers.\n"
            "3. Failed jobs retry with exponential backoff and go to a dead-letter table after 5 attempts.\n"
            "4. Explain the trade-offs against using Celery, and handle the edge cases of clock skew.\n\n"
            "```python\nclass Scheduler:\n    def enqueue(self, tenant_id: str, payload: dict) -> int:\n"
            "        ...\n```"
        )
    ).complexity
    assert greeting < question < design
    assert greeting == 0.0
    assert question < 0.15
    assert design >= 0.6


def test_a_long_pasted_document_adds_less_than_a_long_ask():
    words = "the committee reviewed the budget and approved the new plan for the coming year " * 30
    summary = analyze_request(_user(f"Summarize this:\n\n{words}")).complexity
    ask = analyze_request(_user(f"Please consider {words} and design a rigorous plan.")).complexity
    assert summary < ask


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.just({"url": "https://x.test/a.png"})}
    ),
    st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), _text), max_size=3),
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "other"]),
        "content": st.one_of(st.none(), _text, st.lists(_part, max_size=4), st.integers()),
    }
)


@given(
    messages=st.lists(_message, max_size=6),
    tools=st.one_of(st.none(), st.lists(st.just(TOOL), max_size=3)),
    response_format=st.one_of(
        st.none(), st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])})
    ),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_complexity_stays_within_zero_and_one_for_any_request(messages, tools, response_format):
    analysis = analyze_request(messages, tools=tools, response_format=response_format)
    assert 0.0 <= analysis.complexity <= 1.0
    assert analysis.task_type in TaskType.values
    assert all(math.isfinite(score) and score > 0 for score in analysis.task_scores.values())


@given(
    words=st.lists(
        st.sampled_from(["solve", "x", "=", "2", "\n", "translate", "```", "'", '"', "why"]), max_size=300
    )
)
@settings(max_examples=200, deadline=None)
def test_complexity_stays_within_zero_and_one_for_cue_heavy_text(words):
    analysis = analyze_request(_user(" ".join(words)))
    assert 0.0 <= analysis.complexity <= 1.0


def test_a_200_kb_prompt_is_analysed_without_blowing_up():
    chunk = (
        "Summarize the findings below. Revenue was $4.2M (up 12%), see table 3.\n\n"
        "def f(x):\n    return x * 2\n\n"
        "Why did costs rise? 'Because of fuel', said the CFO. x = 3 + 4 = 7\n" + "\n" * 20
    )
    prompt = (chunk * (200_000 // len(chunk) + 1))[:200_000]
    started = time.perf_counter()
    analysis = analyze_request(
        [{"role": "system", "content": prompt}, {"role": "user", "content": prompt}], tools=[TOOL]
    )
    # Loose on purpose: the analysis reads a bounded part of the text, so this takes milliseconds.
    assert time.perf_counter() - started < 2.0
    assert 0.0 <= analysis.complexity <= 1.0


def _dev_rows() -> list[dict]:
    with DEV_SET.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _is_validation(row: dict) -> bool:
    """Every 4th item of each class was held out while tuning the cues."""
    return int(row["id"].rsplit("-", 1)[1]) % 4 == 0


def _per_class_report(pairs: list[tuple[str, str]]) -> str:
    true_positive, false_positive, false_negative = Counter(), Counter(), Counter()
    for expected, detected in pairs:
        if expected == detected:
            true_positive[expected] += 1
        else:
            false_positive[detected] += 1
            false_negative[expected] += 1
    lines = []
    for task in TaskType.values:
        tp, fp, fn = true_positive[task], false_positive[task], false_negative[task]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        lines.append(
            f"{task:<14} precision {precision:.2f}  recall {recall:.2f}  (tp {tp}, fp {fp}, fn {fn})"
        )
    return "\n".join(lines)


def _tools_for(row: dict) -> list[dict] | None:
    return [TOOL] if row["tools"] else None


def test_the_dev_set_is_classified_above_the_accuracy_floor():
    rows = _dev_rows()
    pairs = [
        (row["task_type"], analyze_request(row["messages"], tools=_tools_for(row)).task_type) for row in rows
    ]
    validation = [pair for row, pair in zip(rows, pairs, strict=True) if _is_validation(row)]
    accuracy = sum(expected == detected for expected, detected in pairs) / len(pairs)
    validation_accuracy = sum(expected == detected for expected, detected in validation) / len(validation)
    report = _per_class_report(pairs)
    assert accuracy >= DEV_ACCURACY_FLOOR, f"accuracy {accuracy:.3f}\n{report}"
    assert validation_accuracy >= DEV_VALIDATION_ACCURACY_FLOOR, (
        f"validation {validation_accuracy:.3f}\n{report}"
    )


def test_complexity_bands_of_the_dev_set_are_ordered_and_spread():
    bands: dict[str, list[float]] = {"low": [], "medium": [], "high": []}
    for row in _dev_rows():
        bands[row["complexity"]].append(analyze_request(row["messages"], tools=_tools_for(row)).complexity)
    means = {band: sum(values) / len(values) for band, values in bands.items()}
    assert means["low"] < 0.2 < means["medium"] < 0.45 < means["high"], means


def test_the_dev_set_is_varied_enough_to_measure_against():
    rows = _dev_rows()
    per_class = Counter(row["task_type"] for row in rows)
    assert set(per_class) == set(TaskType.values)
    assert min(per_class.values()) >= 30
    assert len({row["id"] for row in rows}) == len(rows)
