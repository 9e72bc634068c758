"""The results files: every section's target evaluated, results.md rendered from results.json, and a partial run
merged into a longer one's results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import cold_start, leak_to_dead, offboarding_scale, package_size
from bench.harness import log, verdict_text


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target's verdict, in the order of the sections."""
    return [
        *leak_to_dead.verdicts(results.get("leak_to_dead") or {}),
        *offboarding_scale.verdicts(results.get("offboarding")),
        *cold_start.verdicts(results.get("cold_start")),
        *package_size.verdicts(results.get("package_size")),
    ]


def render_markdown(results: dict[str, Any], notes: str) -> str:
    machine, tool_versions = results["machine"], results["versions"]
    lines = [
        "# Rescind benchmarks",
        "",
        f"Generated {results['generated_at']} by `{results['command']}` in {results['wall_seconds']} s.",
        "",
        f"- **Machine**: {machine['nproc']} CPUs, {machine['memory_mb']} MB memory, {machine['platform']}, "
        f"Python {machine['python']} (the Lambda runtime is 3.12).",
        "- **Versions**: " + ", ".join(f"{name} {value}" for name, value in tool_versions.items()),
        "",
        "Every figure stands beside its bare floor, measured in the same run on the same (shared, noisy) machine.",
        "",
        *_merged_sections(results),
        "## Targets",
        "",
        "| target | wanted | verdict | measured |",
        "|---|---|---|---|",
    ]
    for found in results["targets"]:
        lines.append(f"| {found['target']} | {found['wanted']} | {verdict_text(found['met'])} | {found['detail']} |")
    lines += ["", *leak_to_dead.render(results.get("leak_to_dead") or {})]
    lines += offboarding_scale.render(results.get("offboarding"))
    lines += cold_start.render(results.get("cold_start"))
    lines += package_size.render(results.get("package_size"))
    if notes:
        lines += ["## Findings", "", notes.strip(), ""]
    return "\n".join(lines) + "\n"


def _merged_sections(results: dict[str, Any]) -> list[str]:
    """Which run measured each section merged in since the file was generated (the newest merge of each)."""
    newest: dict[str, dict[str, Any]] = {}
    for merge in results.get("merged") or []:
        for section in merge["sections"]:
            newest[section] = merge
    if not newest:
        return []
    return [
        "Sections measured later and merged in (`--merge-into` or `bench.results.merge_results`), the newest of each:",
        "",
        *(f"- {section}: `{merge['command']}` at {merge['generated_at']}" for section, merge in newest.items()),
        "",
    ]


def merge_results(target: Path, results: dict[str, Any], sections: Sequence[str], notes: str) -> None:
    """Put `sections` of this run into the results.json at `target`, keeping its other sections (a partial run
    never loses the figures of a longer one), re-evaluate the targets and re-render the results.md beside it."""
    merged: dict[str, Any] = json.loads(target.read_text())
    stamp = {"command": results["command"], "generated_at": results["generated_at"]}
    for section in sections:
        merged[section] = {**results[section], **stamp}
    merged.setdefault("merged", []).append(
        {**stamp, "sections": list(sections), "wall_seconds": results["wall_seconds"]}
    )
    merged["targets"] = evaluate_targets(merged)
    target.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    target.with_name("results.md").write_text(render_markdown(merged, notes))
    log(f"merged {', '.join(sections) or 'nothing'} into {target} and re-rendered {target.with_name('results.md')}")
