"""Prompts are data: YAML files in this folder, rendered by one strict function.

A template names its variables as ``{{name}}``; rendering fails loudly on a
variable that is not supplied, so a renamed field can never silently send
"{{question}}" to a model.  No prompt text lives in Python modules.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from mlsd.errors import MLSDError

PROMPTS_DIR = Path(__file__).parent
VARIABLE = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


class MissingVariables(MLSDError):
    """A template was rendered without all of its variables."""


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The parsed prompt file ``prompts/<name>.yaml``."""
    path = PROMPTS_DIR / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MLSDError(f"Prompt file {path} is missing: reinstall the project") from exc
    if not isinstance(data, dict):
        raise MLSDError(f"Prompt file {path} must be a YAML mapping")
    return data


def variables(template: str) -> set[str]:
    return set(VARIABLE.findall(template))


def fill(template: str, **values: Any) -> str:
    """Substitute ``{{name}}`` placeholders; every one must be supplied."""
    missing = variables(template) - values.keys()
    if missing:
        raise MissingVariables(f"Prompt template needs {', '.join(sorted(missing))}")
    return VARIABLE.sub(lambda m: str(values[m.group(1)]), template)


def text(name: str, key: str, **values: Any) -> str:
    """One rendered string from a prompt file (a template phrase, a system prompt...)."""
    data = load(name)
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise MLSDError(f"Prompt {name}.yaml has no key {key!r}")
        node = node[part]
    if not isinstance(node, str):
        raise MLSDError(f"Prompt {name}.yaml key {key!r} is not a string")
    return fill(node, **values).strip()


def messages(name: str, **values: Any) -> list[tuple[str, str]]:
    """A chat prompt as (role, content) pairs: system, few-shot examples, then the user turn.

    The fixed parts come first so llama.cpp can reuse their KV cache across turns.
    """
    data = load(name)
    out = [("system", fill(data["system"], **values).strip())]
    for shot in data.get("few_shot", []):
        out.append(("user", fill(shot["user"], **values).strip()))
        out.append(("assistant", fill(shot["assistant"], **values).strip()))
    out.append(("user", fill(data["user"], **values).strip()))
    return out


def prompt_hash(name: str) -> str:
    """Changes when the prompt file changes (keys caches of judged results)."""
    return hashlib.sha256((PROMPTS_DIR / f"{name}.yaml").read_bytes()).hexdigest()[:16]


def names() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))
