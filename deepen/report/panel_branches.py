"""Panels of the workflow's other branches, each written by its own report rule and included whole: Gstack model
growth (rule growth_report) and SFT with DLO (rule sft_report)."""

from __future__ import annotations

from pathlib import Path

from deepen.core.paths import result_path
from deepen.report.panels import panel


def branch_section(inputs, params, view) -> list[str]:
    return Path(inputs["section"][0]).read_text().splitlines()


panel("growth", lambda facts: {"section": result_path("growth_report", "md")} if facts.config["growth"]["enabled"]
      else None)(branch_section)
panel("sft", lambda facts: {"section": result_path("sft_report", "md")} if facts.config["sft"]["enabled"]
      else None)(branch_section)
