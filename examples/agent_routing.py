"""An agent that sends its background chores (titles, summaries, classification) to a cheap utility
model and its hard tasks to a premium one, with costswitch choosing, holding and charging each call.

    COSTSWITCH_URL=http://127.0.0.1:8000 COSTSWITCH_API_KEY=cs_... \\
    LLM_BASE_URL=https://api.openai.com/v1 LLM_API_KEY=sk-... \\
    python examples/agent_routing.py

LLM_BASE_URL is any OpenAI-compatible endpoint whose model names are the costswitch registry's ids.
Needs only httpx and costswitch/client/ (which a service may vendor as it is).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from costswitch.client import BudgetBlocked, CostSwitch, CostSwitchError


@dataclass(frozen=True)
class Route:
    """How much a kind of task may cost and must be worth."""

    strategy: str
    quality: str
    priority: str
    task_type: str
    max_tokens: int


# Chores the user never reads closely: cheapest model that is good enough; first to go when a
# budget is nearly spent (priority low).
TITLE = Route("cost_optimized", "low", "low", "summarization", 20)
SUMMARY = Route("cost_optimized", "medium", "low", "summarization", 300)
CLASSIFY = Route("cost_optimized", "low", "low", "extraction", 5)
# What the user asked for: the best model the budget allows, still admitted near the limit.
HARD = Route("quality_first", "high", "high", "reasoning", 2000)

RETRYABLE = {429, 500, 502, 503, 504}


class Agent:
    def __init__(self, cs: CostSwitch, llm: httpx.Client, *, agent: str = "support-bot"):
        self.cs = cs
        self.llm = llm
        self.agent = agent

    def ask(self, route: Route, messages: list[dict[str, Any]], *, conversation_id: str) -> str:
        """Select a model for the task, call it (falling back along the chain costswitch gave when
        the provider is overloaded), and settle what it really used."""
        with self.cs.call(
            messages,
            model="auto",
            strategy=route.strategy,
            quality=route.quality,
            priority=route.priority,
            task_type=route.task_type,
            max_tokens=route.max_tokens,
            metadata={"agent": self.agent, "conversation_id": conversation_id},
        ) as call:
            models = [call.model, *(step.model_id for step in call.selection.fallback_chain)]
            for model in models:
                response = self.llm.post(
                    "/chat/completions",
                    json={"model": model, "messages": messages, "max_tokens": route.max_tokens},
                )
                if response.status_code in RETRYABLE and model != models[-1]:
                    continue  # overloaded: try the next model of the chain
                response.raise_for_status()  # the block raises: costswitch releases the hold
                body = response.json()
                usage = body["usage"]
                details = usage.get("prompt_tokens_details") or {}
                call.usage(
                    model=model,
                    input_tokens=usage["prompt_tokens"],
                    output_tokens=usage["completion_tokens"],
                    cached_input_tokens=details.get("cached_tokens") or 0,
                    agent=self.agent,
                    conversation_id=conversation_id,
                )
                return body["choices"][0]["message"]["content"]
        raise AssertionError("unreachable: the loop returns or raises")

    def handle(self, question: str, *, conversation_id: str) -> dict[str, str]:
        """One user turn: the answer on a premium model, the chores on a utility one."""
        user = [{"role": "user", "content": question}]
        label = self.ask(
            CLASSIFY,
            [
                {"role": "system", "content": "Answer with one word: billing, bug, or question."},
                *user,
            ],
            conversation_id=conversation_id,
        )
        answer = self.ask(HARD, user, conversation_id=conversation_id)
        try:
            title = self.ask(
                TITLE,
                [{"role": "system", "content": "Give this conversation a title of five words."}, *user],
                conversation_id=conversation_id,
            )
        except BudgetBlocked:
            title = question[:40]  # the budget is nearly spent: skip the chore, not the answer
        return {"label": label.strip(), "answer": answer, "title": title.strip()}


def main() -> int:
    cs = CostSwitch(os.environ["COSTSWITCH_URL"], os.environ["COSTSWITCH_API_KEY"])
    llm = httpx.Client(
        base_url=os.environ.get("LLM_BASE_URL", "https://api.openai.com/v1"),
        headers={"Authorization": f"Bearer {os.environ['LLM_API_KEY']}"},
        timeout=60,
    )
    with cs, llm:
        agent = Agent(cs, llm)
        question = " ".join(sys.argv[1:]) or "Why is the sum of two odd numbers always even? Prove it."
        try:
            result = agent.handle(question, conversation_id="demo-1")
        except CostSwitchError as error:
            print(f"costswitch refused: {error}", file=sys.stderr)
            if error.override_url:
                print(f"ask for an override: {cs_url(error.override_url)}", file=sys.stderr)
            return 1
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def cs_url(path: str) -> str:
    return os.environ["COSTSWITCH_URL"].rstrip("/") + path


if __name__ == "__main__":
    sys.exit(main())
