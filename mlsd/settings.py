"""Settings: the one place the environment (and `.env`) is read.

Only entry points (the command line, the app, benchmarks) call
:func:`load_settings`; everything below them receives values as arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlsd.errors import MLSDError

LLMProvider = Literal["local", "openai", "none"]
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLSD_", env_file=".env", extra="ignore")

    llm: LLMProvider = "local"
    model: str | None = Field(default=None, description="model name for the openai provider")
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "MLSD_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "MLSD_OPENAI_BASE_URL")
    )
    local_model_path: Path | None = Field(default=None, description="any GGUF file; default: the packaged model")
    local_model: Literal["1.5b", "0.5b"] = "1.5b"
    home: Path = Path(".mlsd")
    chroma_host: str | None = None
    chroma_port: int = Field(default=8000, ge=1, le=65535)
    database_url: str | None = None
    llm_timeout: float = Field(default=60.0, gt=0)
    llm_retries: int = Field(default=2, ge=0, le=10)
    threads: int | None = Field(default=None, ge=1, description="llama.cpp threads; default: all cores")
    llm_concurrency: int = Field(
        default=4, ge=1, le=64, description="LLM judge calls sent side by side to an OpenAI-compatible server; the local model runs one at a time"
    )

    @field_validator("openai_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v or None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'mlsd.db').resolve()}"

    @property
    def store_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def model_label(self) -> str:
        if self.llm == "openai":
            return self.model or DEFAULT_OPENAI_MODEL
        if self.llm == "local":
            return str(self.local_model_path) if self.local_model_path else f"qwen2.5-coder-{self.local_model}-instruct-q4_k_m"
        return "none (template phrasing)"


_ENV_NAMES = {
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}


def _env_name(field: str) -> str:
    return _ENV_NAMES.get(field, "MLSD_" + field.upper())


def load_settings(**overrides) -> Settings:
    """Read settings from the environment and `.env`; bad values name the variable and the fix."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "?"
            allowed = ""
            if e["type"] == "literal_error":
                allowed = f" (allowed: {e['ctx']['expected']})"
            lines.append(f"{_env_name(field)}={e.get('input')!r} is invalid: {e['msg']}{allowed}")
        raise MLSDError("Invalid settings:\n  " + "\n  ".join(lines)) from exc
