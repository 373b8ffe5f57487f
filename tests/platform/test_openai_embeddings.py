"""/v1/embeddings input checks (in-process, no stack)."""

import pytest
from fastapi import HTTPException

from vireo.platform.api.openai_embeddings import EmbeddingRequest, _encoded, embedding_texts


def test_texts_from_string_and_list():
    assert embedding_texts(EmbeddingRequest(model="all-minilm-l6-v2", input="hi")) == ["hi"]
    assert embedding_texts(EmbeddingRequest(model="all-MiniLM-L6-v2", input=["a", "b"])) == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"model": "gpt-4", "input": "x"}, 404),
        ({"model": "all-minilm-l6-v2", "input": [1, 2]}, 400),
        ({"model": "all-minilm-l6-v2", "input": "x", "dimensions": 10}, 400),
        ({"model": "all-minilm-l6-v2", "input": "x", "encoding_format": "hex"}, 400),
        ({"model": "all-minilm-l6-v2", "input": ["x"] * 1000}, 413),
        ({"model": "all-minilm-l6-v2", "input": "x" * 10000}, 413),
    ],
)
def test_refusals(kwargs, code):
    with pytest.raises(HTTPException) as err:
        embedding_texts(EmbeddingRequest(**kwargs))
    assert err.value.status_code == code


def test_base64_is_little_endian_float32():
    import base64
    import struct

    raw = base64.b64decode(_encoded([1.0, -0.5], "base64"))
    assert struct.unpack("<2f", raw) == (1.0, -0.5)


@pytest.fixture(scope="module")
def client(api_server):
    import openai

    from tests.conftest import API_KEY

    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_the_openai_client_embeds_texts(client):
    import math

    reply = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a kitten", "tax law"])
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [384] * 3
    assert reply.usage.prompt_tokens > 0

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    # the openai client asks for base64 by default when no format is given; floats come back the same
    floats = client.embeddings.create(model="all-minilm-l6-v2", input="a cat", encoding_format="float")
    assert max(abs(x - y) for x, y in zip(floats.data[0].embedding, vectors[0])) < 1e-4


def test_an_unknown_embedding_model_is_a_404_in_openai_shape(client):
    import openai

    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
