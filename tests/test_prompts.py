"""Every prompt file renders; a missing variable fails loudly."""

import pytest

import prompts


def _strings(node, path=""):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", prompts.names())
def test_every_template_in_every_prompt_file_renders(name):
    data = prompts.load(name)
    found = list(_strings(data))
    assert found
    for path, template in found:
        values = {v: f"<{v}>" for v in prompts.variables(template)}
        out = prompts.fill(template, **values)
        assert "{{" not in out, f"{name}:{path}"
        for v in values:
            assert f"<{v}>" in out


@pytest.mark.parametrize("name", ["interviewer", "pushback", "tutor", "judge"])
def test_chat_prompts_put_the_fixed_part_first(name):
    data = prompts.load(name)
    values = {v: "X" for _, t in _strings(data) for v in prompts.variables(t)}
    msgs = prompts.messages(name, **values)
    assert msgs[0][0] == "system" and msgs[-1][0] == "user"
    roles = [r for r, _ in msgs[1:-1]]
    assert roles == ["user", "assistant"] * (len(roles) // 2)


def test_missing_variable_is_an_error():
    with pytest.raises(prompts.MissingVariables, match="question"):
        prompts.text("phrases", "advance", from_stage="a", to_stage="b")


def test_unknown_key_is_an_error():
    from mlsd.errors import MLSDError

    with pytest.raises(MLSDError, match="no key"):
        prompts.text("phrases", "does_not_exist")
