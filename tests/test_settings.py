import pytest

from mlsd.errors import MLSDError
from mlsd.settings import load_settings


def test_defaults_are_the_embedded_offline_setup(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    s = load_settings()
    assert s.llm == "local"
    assert s.chroma_host is None
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith(".mlsd/mlsd.db")


def test_environment_values_are_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSD_LLM", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("MLSD_HOME", str(tmp_path / "h"))
    s = load_settings()
    assert s.llm == "openai"
    assert s.openai_api_key.get_secret_value() == "sk-abc"
    assert "sk-abc" not in repr(s)
    assert s.store_dir == tmp_path / "h" / "chroma"


def test_dotenv_is_honoured(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MLSD_LLM=none\nMLSD_CHROMA_PORT=9100\n")
    s = load_settings()
    assert s.llm == "none" and s.chroma_port == 9100


def test_bad_provider_names_variable_and_allowed_values(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSD_LLM", "gpt5")
    with pytest.raises(MLSDError) as err:
        load_settings()
    msg = str(err.value)
    assert "MLSD_LLM" in msg and "'local'" in msg and "'openai'" in msg and "'none'" in msg


def test_bad_port_and_url(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSD_CHROMA_PORT", "99999")
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000")
    with pytest.raises(MLSDError) as err:
        load_settings()
    assert "MLSD_CHROMA_PORT" in str(err.value) and "OPENAI_BASE_URL" in str(err.value)


def test_openai_without_key_or_url_names_the_fix(monkeypatch, tmp_path):
    from agents.llm import LLMError, make_chat_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        make_chat_model(load_settings(llm="openai"))


def test_none_provider_means_no_model(tmp_path, monkeypatch):
    from agents.llm import make_chat_model

    monkeypatch.chdir(tmp_path)
    assert make_chat_model(load_settings(llm="none")) is None
