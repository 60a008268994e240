"""Where every artifact lives: each rule's result paths, by output name. The one owner of every path under results/:
the job table (deepen/workflow/jobs.py) gives them to the rules, and the methods and the report's panels name what
they read by key (:class:`Artifact`), never by a path of their own."""

from __future__ import annotations

from dataclasses import dataclass, field

# Where each rule writes, by output name; {wildcards} are the rule's. "{aligned}" is "" for the base's artifacts and
# "aligned/" for the aligned base's, which mirror them under results/aligned/ (and results/report/aligned/).
OUTPUTS: dict[str, dict[str, str]] = {
    "corpus": {s: f"results/data/{s}.txt" for s in ("train", "val", "test")} | {
        "manifest": "results/data/manifest.json"},
    "tokenizer": {"tokenizer": "results/tokenizer"},
    "tokens": {"tokens": "results/tokens/{split}.bin", "info": "results/tokens/{split}.json"},
    "pretrain_base": {"model": "results/base", "metrics": "results/base_training/metrics.jsonl",
                      "info": "results/base_training/info.json"},
    "import_base": {"model": "results/base"},
    "base_info": {"info": "results/base_import/info.json"},
    "align_base": {"model": "results/aligned/base"},
    "extract_weights": {"weights": "results/{aligned}weights/{matrix}.safetensors"},
    "svd": {"svd": "results/{aligned}svd/{matrix}.safetensors", "report": "results/{aligned}svd/{matrix}.json"},
    "predictor": {"models": "results/{aligned}{predictor}/{matrix}.pt",
                  "curves": "results/{aligned}{predictor}/{matrix}.json"},
    "predictor_heldout": {"fits": "results/{aligned}predictor_heldout/{space}/{matrix}.json"},
    "svd_continuity": {"png": "results/report/{aligned}svd_continuity.png",
                       "ratios": "results/report/{aligned}svd_continuity.json"},
    "generate_layers": {"new_layers": "results/layers/{model}/new_layers.safetensors",
                        "plan": "results/layers/{model}/plan.json"},
    "reconstruct": {"model": "results/models/{model}"},
    "continual_pretrain": {"metrics": "results/cpt/{method}/{freeze}/seed{seed}/metrics.jsonl",
                           "info": "results/cpt/{method}/{freeze}/seed{seed}/info.json",
                           "final": "results/cpt/{method}/{freeze}/seed{seed}/final"},
    "task_data": {"data": "results/eval/task_data"},
    "evaluate": {"eval": "results/eval/{method}/{freeze}/seed{seed}.json"},
    "evaluate_init": {"eval": "results/eval/init/{model}.json"},
    "init_loss": {"loss": "results/init/{model}.json"},
    "seams": {"seams": "results/seams/{model}.json"},
    "samples": {"samples": "results/samples/{stage}.json"},
    "layer_profile": {"profile": "results/layer_profile.json"},
    "report": {"csv": "results/report/summary.csv", "runs_csv": "results/report/runs.csv",
               "init_csv": "results/report/init.csv", "md": "results/report/summary.md",
               "curves": "results/report/loss_curves.png"},
    "base_training_curve": {"png": "results/report/base_training.png"},
    "growth_scratch": {"metrics": "results/growth/scratch/seed{seed}/metrics.jsonl",
                       "info": "results/growth/scratch/seed{seed}/info.json",
                       "model": "results/growth/scratch/seed{seed}/model"},
    "growth_small": {"metrics": "results/growth/small/g{g}_d{d}/seed{seed}/metrics.jsonl",
                     "info": "results/growth/small/g{g}_d{d}/seed{seed}/info.json",
                     "model": "results/growth/small/g{g}_d{d}/seed{seed}/model"},
    "growth_grown": {"metrics": "results/growth/{operator}/g{g}_d{d}/seed{seed}/metrics.jsonl",
                     "info": "results/growth/{operator}/g{g}_d{d}/seed{seed}/info.json",
                     "model": "results/growth/{operator}/g{g}_d{d}/seed{seed}/model"},
    "growth_report": {"png": "results/report/growth_curves.png", "md": "results/report/growth.md",
                      "csv": "results/report/growth.csv"},
    "sft_data": {"train": "results/sft/data/train.jsonl", "heldout": "results/sft/data/heldout.jsonl",
                 "counts": "results/sft/data/counts.json"},
    "sft": {"metrics": "results/sft/{variant}/seed{seed}/metrics.jsonl",
            "info": "results/sft/{variant}/seed{seed}/info.json", "final": "results/sft/{variant}/seed{seed}/final"},
    "evaluate_sft": {"eval": "results/sft/{variant}/seed{seed}/eval.json"},
    "sft_report": {"md": "results/report/sft.md", "csv": "results/report/sft.csv",
                   "png": "results/report/dlo_execution.png"},
    "race_rung": {"state": "results/race/{method}/{freeze}/rung{rung}/state",
                  "metrics": "results/race/{method}/{freeze}/rung{rung}/metrics.jsonl",
                  "info": "results/race/{method}/{freeze}/rung{rung}/info.json"},
    "race_decide": {"decision": "results/race/rung{rung}.json"},
    "race_cooldown": {"final": "results/race/winner/final", "metrics": "results/race/winner/metrics.jsonl",
                      "info": "results/race/winner/info.json"},
    "race_bracket": {"bracket": "results/race/bracket.json"},
    "export_gguf": {"gguf": "results/export/{export}.gguf", "modelfile": "results/export/{export}.Modelfile"},
    "export_model": {"folder": "results/export/{export}"},
    "manifest": {"manifest": "results/manifest.json"},
}
# outputs that are folders (Snakemake's directory())
FOLDERS = {"results/tokenizer", "results/base", "results/aligned/base", "results/models/{model}",
           "results/cpt/{method}/{freeze}/seed{seed}/final", "results/eval/task_data",
           "results/growth/scratch/seed{seed}/model", "results/growth/small/g{g}_d{d}/seed{seed}/model",
           "results/growth/{operator}/g{g}_d{d}/seed{seed}/model", "results/sft/{variant}/seed{seed}/final",
           "results/race/{method}/{freeze}/rung{rung}/state", "results/race/winner/final", "results/export/{export}"}
# rules whose outputs span a wildcard within one job: every matrix type (as Snakemake's expand)
PER_MATRIX = {"extract_weights", "predictor", "predictor_heldout"}


def fill(pattern: str, **wildcards) -> str:
    """``pattern`` with the wildcards given filled in; ``{{x}}`` stays ``{x}`` for Snakemake."""
    return pattern.format_map(_Keep(wildcards))


class _Keep(dict):
    def __missing__(self, key):
        return "{" + key + "}"


@dataclass(frozen=True)
class Artifact:
    """An artifact named by key: the output ``output`` of rule ``rule``, with the wildcards in ``wildcards`` fixed
    (the others, {matrix} say, stay for the reader to fill)."""

    rule: str
    output: str
    wildcards: dict = field(default_factory=dict)

    def pattern(self, aligned: bool = False) -> str:
        """Its path pattern, on the base or (``aligned``) on the aligned base."""
        return result_path(self.rule, self.output, aligned, **self.wildcards)


def result_path(rule: str, output: str, aligned: bool = False, **wildcards) -> str:
    """The path of ``rule``'s output ``output``, the wildcards given filled in (the rest stay); ``aligned``: the
    aligned base's copy of a base artifact (under results/aligned/)."""
    return fill(OUTPUTS[rule][output], aligned="aligned/" if aligned else "", **wildcards)
