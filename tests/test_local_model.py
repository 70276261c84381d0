"""The packaged model: hash boundary (fast) and the real model (slow, marked real)."""

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from agents.local_model import MODELS, PackagedModel, assemble, check_gguf, resolve_model_path, verify
from mlsd.errors import MLSDError

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".mlsd"


def _toy(tmp_path, data: bytes) -> PackagedModel:
    import hashlib

    return PackagedModel("toy", "toy", "nope_part", 1, len(data), hashlib.sha256(data).hexdigest(), "install it")


def test_verify_accepts_exact_file_and_refuses_a_flipped_byte(tmp_path):
    data = b"GGUF" + bytes(range(256)) * 40
    spec = _toy(tmp_path, data)
    good = tmp_path / "m.gguf"
    good.write_bytes(data)
    verify(good, spec)
    bad = tmp_path / "bad.gguf"
    flipped = bytearray(data)
    flipped[1000] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(MLSDError, match="refusing to load"):
        verify(bad, spec)


def test_missing_part_package_names_the_install_command(tmp_path):
    spec = _toy(tmp_path, b"GGUF1234")
    with pytest.raises(MLSDError, match="install it"):
        assemble(spec, tmp_path / "models")
    assert not any((tmp_path / "models").glob("*.gguf"))


def test_user_file_must_be_gguf(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"not a model")
    with pytest.raises(MLSDError, match="not a GGUF"):
        check_gguf(f)


@pytest.mark.real
def test_packaged_model_corrupted_copy_is_refused(tmp_path):
    path = resolve_model_path(None, "1.5b", HOME)
    spec = MODELS["1.5b"]
    copy = tmp_path / spec.filename
    with open(path, "rb") as src, open(copy, "wb") as dst:
        while block := src.read(1 << 24):
            dst.write(block)
    with open(copy, "r+b") as fh:  # flip one byte in the middle
        fh.seek(spec.size // 2)
        b = fh.read(1)
        fh.seek(spec.size // 2)
        fh.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(MLSDError, match="sha256"):
        verify(copy, spec)


@pytest.mark.real
def test_real_local_model_returns_schema_valid_json():
    from agents.llm import make_chat_model, structured
    from mlsd.settings import load_settings

    class Verdict(BaseModel):
        score: Literal[0, 1, 2, 3, 4]
        reason: str = Field(max_length=80)

    model = make_chat_model(load_settings(llm="local", home=HOME))
    reply = structured(
        model,
        [("system", "You grade interview answers on a 0-4 scale."), ("user", "Grade: 'I would report AUC and calibration.' Reply in JSON.")],
        Verdict,
        max_tokens=60,
    )
    assert reply.score in (0, 1, 2, 3, 4)
    assert 0 < len(reply.reason) <= 80
