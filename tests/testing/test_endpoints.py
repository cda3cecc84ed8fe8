"""Embeddings, images and model lists."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Any

import aiohttp
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from aiport.testing import Emulator

from .conftest import AN, OA


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of an RGB PNG, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks[tag] = body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    assert b"IEND" in chunks
    return width, height, raw


async def embed(http: aiohttp.ClientSession, emu: Emulator, **body: Any) -> tuple[int, Any]:
    async with http.post(emu.openai_base_url + "/embeddings", json=body, headers=OA) as r:
        return r.status, await r.json()


async def test_embeddings_are_deterministic_unit_vectors(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    status, data = await embed(http, emu, model="text-embedding-3-small", input=["a cat", "a dog"])
    assert status == 200
    assert data["object"] == "list"
    assert data["model"] == "text-embedding-3-small"
    assert data["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    first, second = (item["embedding"] for item in data["data"])
    assert [item["index"] for item in data["data"]] == [0, 1]
    assert {item["object"] for item in data["data"]} == {"embedding"}
    assert len(first) == 1536
    for vector in (first, second):
        assert abs(math.sqrt(math.fsum(x * x for x in vector)) - 1.0) < 1e-9
    assert first != second
    _, again = await embed(http, emu, model="text-embedding-3-small", input="a cat")
    assert again["data"][0]["embedding"] == first
    _, other_model = await embed(http, emu, model="text-embedding-3-large", input="a cat")
    assert len(other_model["data"][0]["embedding"]) == 3072


async def test_embedding_dimensions_and_base64(http: aiohttp.ClientSession, emu: Emulator) -> None:
    _, data = await embed(http, emu, model="text-embedding-3-large", input="x", dimensions=256)
    vector = data["data"][0]["embedding"]
    assert len(vector) == 256
    assert abs(math.fsum(v * v for v in vector) - 1.0) < 1e-9
    _, b64 = await embed(
        http,
        emu,
        model="text-embedding-3-large",
        input="x",
        dimensions=256,
        encoding_format="base64",
    )
    raw = base64.b64decode(b64["data"][0]["embedding"])
    floats = struct.unpack("<256f", raw)
    assert all(abs(a - b) < 1e-6 for a, b in zip(floats, vector, strict=True))
    status, error = await embed(http, emu, model="text-embedding-ada-002", input="x", dimensions=8)
    assert status == 400
    assert error["error"]["message"] == "This model does not support specifying dimensions."
    status, _ = await embed(http, emu, model="text-embedding-3-small", input="x", dimensions=4000)
    assert status == 400


async def test_embedding_token_arrays_and_bad_input(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    _, data = await embed(http, emu, model="text-embedding-3-small", input=[[1, 2, 3], [4]])
    assert data["usage"]["prompt_tokens"] == 4
    _, same = await embed(http, emu, model="text-embedding-3-small", input="1 2 3")
    assert same["data"][0]["embedding"] == data["data"][0]["embedding"]
    for bad in ("", [], [""], [1, "a"]):
        status, error = await embed(http, emu, model="text-embedding-3-small", input=bad)
        assert status == 400, bad
        assert "'$.input' is invalid" in error["error"]["message"]
    status, error = await embed(http, emu, model="text-embedding-3-small")
    assert (status, error["error"]["code"]) == (400, "missing_required_parameter")


async def test_sdk_embeddings(oai: AsyncOpenAI) -> None:
    # The SDK asks for base64 and decodes it: the float32 round trip keeps the norm near 1.
    r = await oai.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=64)
    vector = r.data[0].embedding
    assert len(vector) == 64
    assert abs(math.fsum(v * v for v in vector) - 1.0) < 1e-5
    assert r.usage.prompt_tokens == 1


async def test_images_url_and_b64(oai: AsyncOpenAI, http: aiohttp.ClientSession) -> None:
    r = await oai.images.generate(model="dall-e-2", prompt="a red fox", n=2, size="256x256")
    assert r.data is not None
    assert len(r.data) == 2
    assert r.data[0].revised_prompt == "a red fox"
    images = []
    for item in r.data:
        assert item.url is not None
        async with http.get(item.url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "image/png"
            images.append(await resp.read())
    assert images[0] != images[1]
    assert decode_png(images[0])[:2] == (16, 16)
    r = await oai.images.generate(model="dall-e-3", prompt="a red fox", response_format="b64_json")
    assert r.data is not None
    assert r.data[0].b64_json is not None
    assert decode_png(base64.b64decode(r.data[0].b64_json))[:2] == (16, 16)


async def test_gpt_image_always_b64(oai: AsyncOpenAI) -> None:
    r = await oai.images.generate(model="gpt-image-1", prompt="a boat", quality="low")
    assert r.data is not None
    assert r.data[0].url is None
    assert r.data[0].b64_json is not None
    decode_png(base64.b64decode(r.data[0].b64_json))
    assert r.usage is not None
    assert r.usage.input_tokens == 2
    assert (r.output_format, r.quality, r.size) == ("png", "low", "1024x1024")
    with pytest.raises(openai.BadRequestError) as info:
        await oai.images.generate(model="gpt-image-1", prompt="a boat", response_format="url")
    assert info.value.param == "response_format"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "dall-e-2", "prompt": "x", "size": "999x999"}, "size"),
        ({"model": "dall-e-3", "prompt": "x", "size": "256x256"}, "size"),
        ({"model": "gpt-image-1", "prompt": "x", "size": "1792x1024"}, "size"),
        ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n"),
        ({"model": "dall-e-2", "prompt": "x", "n": 11}, "n"),
        ({"model": "dall-e-2"}, "prompt"),
        ({"model": "dall-e-3", "prompt": "x", "style": "odd"}, "style"),
    ],
)
async def test_image_validation(
    http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any], param: str
) -> None:
    async with http.post(emu.openai_base_url + "/images/generations", json=body, headers=OA) as r:
        assert r.status == 400
        assert (await r.json())["error"]["param"] == param


async def test_gpt_image_2_takes_custom_sizes(http: aiohttp.ClientSession, emu: Emulator) -> None:
    url = emu.openai_base_url + "/images/generations"
    for size, status in (
        ("1536x864", 200),
        ("1000x1000", 400),
        ("4800x1600", 200),
        ("4800x800", 400),
    ):
        body = {"model": "gpt-image-2", "prompt": "x", "size": size}
        async with http.post(url, json=body, headers=OA) as r:
            assert r.status == status, size


async def test_missing_file_is_404(http: aiohttp.ClientSession, emu: Emulator) -> None:
    async with http.get(emu.url + "/files/img-nope.png") as r:
        assert r.status == 404


async def test_openai_models(oai: AsyncOpenAI) -> None:
    page = await oai.models.list()
    ids = [m.id for m in page.data]
    assert "gpt-4o" in ids
    assert "text-embedding-3-small" in ids
    assert all(m.object == "model" and m.created > 0 and m.owned_by for m in page.data)
    model = await oai.models.retrieve("gpt-4o")
    assert model.id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("no-such-model")


async def test_anthropic_models(
    ant: AsyncAnthropic, http: aiohttp.ClientSession, emu: Emulator
) -> None:
    page = await ant.models.list()
    assert page.data
    assert all(m.type == "model" and m.display_name for m in page.data)
    async with http.get(emu.url + "/v1/models", headers=AN, params={"limit": "2"}) as r:
        data = await r.json()
    assert len(data["data"]) == 2
    assert data["has_more"] is True
    assert data["first_id"] == data["data"][0]["id"]
    assert data["last_id"] == data["data"][1]["id"]
    first = (await ant.models.retrieve(data["first_id"])).id
    assert first == data["first_id"]
