"""Routing quality measured on public per-prompt outcomes (RouteLLM's MMLU, GSM8K and MT-Bench
files): the product's own selection path replayed prompt by prompt, scored with RouteLLM's metrics.
`manage.py routing_eval` runs it; docs/routing.md shows the result."""
