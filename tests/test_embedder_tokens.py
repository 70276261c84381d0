import math

import pytest


@pytest.mark.real
def test_real_embedder_offline_dimensions_and_similarity(real_embedder):
    a, b = real_embedder.embed_documents(["A man is eating food.", "A man is eating a piece of bread."])
    assert len(a) == 384
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    assert cos == pytest.approx(0.755, abs=0.01)


def test_word_piece_counter_uses_the_embedders_tokenizer():
    from knowledge.embedder import count_word_pieces

    assert count_word_pieces("embeddings") == 4  # em ##bed ##ding ##s: one word, four pieces
    assert count_word_pieces("hello world") == 2


@pytest.mark.parametrize("name,text,expected", [("cl100k_base", "hello world", [15339, 1917]), ("o200k_base", "hello world", [24912, 2375])])
def test_tiktoken_offline_encodings(name, text, expected):
    from agents.tokens import encoding

    enc = encoding(name)  # the network guard would fail any download
    assert enc.encode(text) == expected
    assert enc.decode(expected) == text


def test_truncate_tokens_bounds_prompts():
    from agents.tokens import count_tokens, truncate_tokens

    long = "word " * 5000
    cut = truncate_tokens(long, 100)
    assert count_tokens(cut) <= 100 < count_tokens(long)
