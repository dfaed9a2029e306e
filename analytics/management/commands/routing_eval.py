from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analytics.routing import report
from analytics.routing.data import BENCHMARKS, DEFAULT_DATA_DIR, RoutingDataMissing, load
from analytics.routing.evaluate import LEARNED_SEEDS, SEEDS, evaluate


class Command(BaseCommand):
    help = (
        "Replay RouteLLM's public per-prompt outcomes through the product's selection path and report "
        "PGR/APGR/CPT against the baselines (JSON, markdown table and plot; docs/routing.md with --docs)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="The routing-data directory.")
        parser.add_argument("--benchmark", choices=[*BENCHMARKS, "all"], default="all")
        parser.add_argument("--out", default="bench/routing/results.json", help="The JSON file to write.")
        parser.add_argument("--docs", default="", help="Also rewrite this page (docs/routing.md).")
        parser.add_argument("--seeds", type=int, default=SEEDS)
        parser.add_argument("--no-online", action="store_true", help="Skip the online-learning replay.")
        parser.add_argument(
            "--learned-seeds",
            type=int,
            default=LEARNED_SEEDS,
            help="Seeds for the learned router's cross-fit and online replays (0 skips them).",
        )
        parser.add_argument("--limit", type=int, default=0, help="Only the first N prompts per benchmark.")

    def handle(self, *, data, benchmark, out, docs, seeds, no_online, limit, learned_seeds, **options):
        names = BENCHMARKS if benchmark == "all" else (benchmark,)
        try:
            datasets = {name: load(data, name) for name in names}
        except RoutingDataMissing as error:
            raise CommandError(str(error)) from error
        results = []
        for name, items in datasets.items():
            result = evaluate(
                name,
                items[:limit] if limit else items,
                seeds=seeds,
                online=not no_online,
                learned_seeds=learned_seeds,
                progress=lambda message: self.stderr.write(message),
            )
            results.append(result)
        written = report.write(results, Path(out), Path(docs) if docs else None)
        self.stdout.write(report.table(results))
        for kind, path in written.items():
            self.stdout.write(f"{kind}: {path}")
