"""A base model named as the Hugging Face Hub names it (``owner/name``, with an optional revision), resolved the way
transformers resolves it: the Hugging Face cache first, then a download of the files a causal LM needs when the
user's environment allows the network.

The network is the user's call, read as transformers reads it: ``HF_HUB_OFFLINE`` set to 1/true/yes/on means the cache
only. The workflow resolves the name once, in the config check, before any job; every job then reads the cached
snapshot folder, whose name is the exact commit, so a rerun reads the same weights.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# What a causal LM needs, and nothing else of the repo (no .bin twins of the safetensors, no ONNX or GGUF exports)
MODEL_FILES = ["config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
               "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
               "LICENSE*", "README.md"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "true", "yes", "on"}


class HubError(ValueError):
    """A Hub name that cannot be resolved: the message says why and what to do."""


@dataclass(frozen=True)
class HubModel:
    repo: str
    revision: str  # as the user wrote it
    commit: str  # the exact commit the snapshot holds
    path: Path  # the snapshot folder: an ordinary HF model directory


def looks_like_repo(name: str) -> bool:
    """``owner/name`` and not a folder that exists here: a relative path that exists is a folder, as for
    transformers."""
    return bool(_REPO_ID.match(name)) and not Path(name).exists() and not name.startswith((".", "~"))


def hub_offline() -> bool:
    """Whether the user's environment forbids the network, read as transformers reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def fetch_command(repo: str, revision: str = "main") -> str:
    rev = "" if revision == "main" else f" --revision {revision}"
    include = " ".join(f"--include '{p}'" for p in MODEL_FILES[:8])
    return f"hf download {repo}{rev} {include}"


@lru_cache(maxsize=None)
def resolve(repo: str, revision: str = "main", offline: bool | None = None) -> HubModel:
    """The local snapshot of ``repo`` at ``revision``: from the cache, or downloaded (the model's files only) when
    ``offline`` is False (default: the user's environment decides)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub import errors

    offline = hub_offline() if offline is None else offline
    try:
        path = Path(snapshot_download(repo, revision=revision, allow_patterns=MODEL_FILES, local_files_only=offline,
                                      cache_dir=hub_cache()))
    except errors.GatedRepoError:
        raise HubError(f"{repo} is gated: accept its terms on https://huggingface.co/{repo} and log in "
                       "(hf auth login, or set HF_TOKEN)") from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"{repo}: no such repository on the Hub (or it is private and no token is set: hf auth login)"
                       ) from None
    except errors.RevisionNotFoundError:
        raise HubError(f"{repo}: revision {revision!r} does not exist") from None
    except errors.LocalEntryNotFoundError:
        why = ("HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached")
        raise HubError(f"{repo} (revision {revision}) is not in the Hugging Face cache {hub_cache()} and {why}; "
                       f"fetch it where the network is allowed: {fetch_command(repo, revision)} (a local folder of "
                       "that name does not exist either)") from None
    except errors.HFValidationError as e:
        raise HubError(f"{repo!r} is not a Hub repository name: {e}") from None
    if not (path / "config.json").exists():
        raise HubError(f"{repo}: the snapshot {path} has no config.json; is it a model repository?")
    if not any(path.glob("*.safetensors")):
        raise HubError(f"{repo}: no .safetensors weights at revision {revision} (deepen reads safetensors only; "
                       "convert the checkpoint with transformers' save_pretrained)")
    return HubModel(repo, revision, path.name, path)
