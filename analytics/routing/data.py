"""The evaluation data: RouteLLM's released per-prompt outcomes for a strong and a weak model.

Read from a directory given on the command line, never copied into the repository. Prompts listed
in each benchmark's `contaminated_prompts.jsonl` are dropped, as RouteLLM's paper does."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
BENCHMARKS = ("mmlu", "gsm8k", "mt-bench")
# ../shared/routing-data relative to the repository.
DEFAULT_DATA_DIR = Path(settings.BASE_DIR).resolve().parent / "shared" / "routing-data"
EVALS = Path("routellm-repo") / "routellm" / "evals"


class RoutingDataMissing(Exception):
    """The data directory (or one of its files) is not there: the message says where to put it."""


@dataclass(frozen=True)
class Item:
    """One prompt with both models' outcome: 1/0 for correct/wrong, or a 1-10 judge score."""

    prompt: str
    strong: float
    weak: float


def missing_message(data_dir: Path) -> str:
    return (
        f"Routing data not found at {data_dir}. Put RouteLLM's released evaluation files there "
        f"(https://github.com/lm-sys/RouteLLM, commit 0b64fdaf, Apache-2.0) so that "
        f"{data_dir / EVALS / 'mmlu' / 'responses'} holds the mmlu_<subject>.csv files, with "
        f"gsm8k/gsm8k_responses.csv and mt_bench/{{question,judgements}}.jsonl beside it "
        f"(default location: ../shared/routing-data next to the repository; or pass --data DIR)."
    )


def load(data_dir: Path | str, benchmark: str) -> list[Item]:
    """The decontaminated items of one benchmark, in file order."""
    root = Path(data_dir) / EVALS
    if not root.is_dir():
        raise RoutingDataMissing(missing_message(Path(data_dir)))
    loader = {"mmlu": _mmlu, "gsm8k": _gsm8k, "mt-bench": _mt_bench}[benchmark]
    try:
        return loader(root)
    except FileNotFoundError as error:
        raise RoutingDataMissing(f"{missing_message(Path(data_dir))} Missing: {error.filename}") from error


def _contaminated(path: Path) -> set[str]:
    with path.open(encoding="utf-8") as lines:
        return {json.loads(line)["eval_prompt"] for line in lines if line.strip()}


def _truth(value: str) -> float:
    return 1.0 if value.strip() == "True" else 0.0


def _csv_items(path: Path, drop: set[str]) -> list[Item]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Item(prompt=row["prompt"], strong=_truth(row[STRONG]), weak=_truth(row[WEAK]))
            for row in csv.DictReader(handle)
            if row["prompt"] not in drop
        ]


def _mmlu(root: Path) -> list[Item]:
    drop = _contaminated(root / "mmlu" / "contaminated_prompts.jsonl")
    files = sorted((root / "mmlu" / "responses").glob("mmlu_*.csv"))
    if not files:
        raise FileNotFoundError(2, "no mmlu_*.csv", str(root / "mmlu" / "responses"))
    return [item for path in files for item in _csv_items(path, drop)]


def _gsm8k(root: Path) -> list[Item]:
    drop = _contaminated(root / "gsm8k" / "contaminated_prompts.jsonl")
    return _csv_items(root / "gsm8k" / "gsm8k_responses.csv", drop)


def _mt_bench(root: Path) -> list[Item]:
    """Routed on the first turn; the outcome is the mean of both turns' judge scores (RouteLLM's way)."""
    drop = _contaminated(root / "mt_bench" / "contaminated_prompts.jsonl")
    scores: dict[tuple[int, str], list[float]] = {}
    with (root / "mt_bench" / "judgements.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                scores.setdefault((row["question_id"], row["model"]), []).append(float(row["score"]))
    items = []
    with (root / "mt_bench" / "question.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            question = json.loads(line)
            prompt = question["turns"][0]
            if prompt in drop:
                continue
            strong = scores[(question["question_id"], STRONG)]
            weak = scores[(question["question_id"], WEAK)]
            items.append(Item(prompt=prompt, strong=sum(strong) / len(strong), weak=sum(weak) / len(weak)))
    return items
