"""An offline emulator of the AI providers' HTTP APIs, for tests and demos.

It serves the real wire formats (JSON bodies, SSE / NDJSON / AWS event-stream framing,
error bodies, headers) over real HTTP on loopback, so aiport's adapters and the official
SDKs both accept it. OpenAI and Anthropic are described below; the other providers'
routes document their own rules in their modules: Gemini (``_gemini``), Azure OpenAI
(``_azure``), Mistral (``_mistral``), Cohere (``_cohere``), Ollama (``_ollama``) and
Bedrock (``_bedrock``); :class:`Emulator` has a base URL property for each::

    from aiport.testing import Emulator, Fault

    async with Emulator() as emu:
        client = AsyncOpenAI(base_url=emu.openai_base_url, api_key="sk-test")
        emu.fail_next(1, Fault.status(429, retry_after="1"))
        ...

    with Emulator().run_in_thread() as emu:   # sync code, fixtures, the CLI
        ...

The pytest plugin (``aiport.testing.pytest_plugin``, auto-loaded) provides the fixtures
``aiport_emulator`` (per test) and ``aiport_emulator_session``.

Deterministic behaviour
=======================
Adapter tests rely on these rules; they are part of the API.

Tokens
    ``count_tokens(text) = len(re.findall(r"\\w+|[^\\w\\s]", text))``. Prompt tokens are
    the sum over messages of their text (system prompt, every text part, tool results,
    tool-call arguments; Anthropic ``tool_use`` inputs as ``json.dumps(input)``) plus 3 per
    message; each image (and each non-text Anthropic document) counts 85. The Anthropic
    top-level ``system`` is not a message (no +3). Tool definitions are not counted.
    A prompt above ``context_window`` (or the model's ``context_windows`` entry) gets the
    provider's context-length 400.
Answers
    ``"You said: " + <text of the last user message>`` (text parts joined with a space,
    plus ``" [images: N]"`` when it had images). When the last message is a tool result
    (OpenAI: the trailing ``tool`` messages; Anthropic: ``tool_result`` blocks in the last
    user message) the answer is ``"Tool results: " + "; ".join(contents)``.
    JSON modes win over both: OpenAI ``response_format`` ``json_object`` answers
    ``json.dumps({"echo": <last user text>})``; ``json_schema`` (and Anthropic
    ``output_config.format`` / ``output_format`` of type ``json_schema``) answers a compact
    JSON instance generated from the schema (see below).
    Anthropic prefill: a request whose last message is an assistant text continues it:
    the answer is the rest of the full answer after that text (the whole answer when it
    does not start with it). Trailing whitespace in the prefill is a 400, as in the real
    API, and so is any prefill for a model named in ``Emulator(reject_prefill=...)``.
Output tokens and stopping
    The answer is split into tokens with ``re.findall(r"\\s*\\S+", text)`` (a word with its
    leading whitespace); the returned text is exactly those tokens joined, and streams send
    one token per content delta. Stop sequences (OpenAI ``stop``, Anthropic
    ``stop_sequences``) cut the text before the earliest occurrence (finish ``stop`` /
    ``stop_sequence`` with ``stop_sequence`` set). Then, if more tokens remain than
    ``max_completion_tokens``/``max_tokens``, the answer is truncated and the finish reason
    is ``length`` / ``max_tokens``. Tool calls are never truncated.
Tools
    When tools are offered, ``tool_choice`` is not none and the last message is not a tool
    result, the model calls tools instead of answering: the named ``tool_choice`` if any,
    else every tool whose name occurs in the last user text (in offered order), else the
    first tool; only the first when parallel calls are disabled
    (``parallel_tool_calls: false`` / ``disable_parallel_tool_use: true``). Arguments are
    generated from the tool's schema; ids are ``call_``/``toolu_`` + 24 characters derived
    from a hash of the request body and the call's position. OpenAI finishes with
    ``tool_calls`` (content null); Anthropic with ``tool_use``, after a text block
    ``"I'll call <a> and <b>."``. Output tokens count the arguments' JSON tokens.
Schema-driven JSON
    object -> every property, required first; string -> ``enum[0]``, ``const``, a sample
    for well-known ``format`` values, else ``"example"`` padded with ``x``/trimmed to
    minLength/maxLength; integer -> minimum (exclusive: +1) or 1, clamped to maximum and
    ``multipleOf``; number -> minimum or 1.5 (midpoint if that breaks maximum); boolean ->
    true; array -> one item or minItems (distinct items under uniqueItems); null -> null;
    anyOf/oneOf -> first branch; allOf -> merged; ``$ref`` into ``$defs``/``definitions``
    resolved; nesting past depth 6 only fills required properties and minItems.
    ``pattern`` and non-integer ``multipleOf`` are not honoured.
Anthropic thinking
    ``thinking: {"type": "enabled", "budget_tokens": N}`` (N >= 1024, < max_tokens) or
    ``{"type": "adaptive"}`` puts a first block ``{"type": "thinking", "thinking":
    "Thinking about: <last user text>", "signature": <base64 of a hash>}`` (streamed as
    ``thinking_delta`` per token then one ``signature_delta``); it adds to output tokens but
    not to the ``max_tokens`` budget of the answer.
Usage and caching
    OpenAI ``usage`` has ``prompt_tokens_details`` and ``completion_tokens_details``; with
    a ``prompt_cache_key`` in the body, ``cached_tokens`` is prompt tokens rounded down to
    a multiple of 64. Anthropic: when any system/message block (or the request, via a
    top-level ``cache_control``) carries ``cache_control``, ``cache_read_input_tokens`` is
    the prompt tokens up to and including the last marked block and ``input_tokens`` the
    rest (their sum is the prompt); ``cache_creation_input_tokens`` is always 0.
Streams
    OpenAI: ``data: <chunk>`` events (role delta with content ``""`` - ``null`` before tool
    calls - then one delta per token or per tool-call start and 8-character argument piece,
    a final chunk with ``finish_reason``, a usage chunk with ``choices: []`` when
    ``stream_options.include_usage`` (earlier chunks then carry ``usage: null``), then
    ``data: [DONE]``. Anthropic: ``message_start`` (output_tokens 1), per block
    ``content_block_start``/deltas/``content_block_stop`` with one ``ping`` after the
    first start, ``message_delta`` and ``message_stop``. ``stream_delay`` seconds pass
    between events.
Embeddings
    Unit vectors seeded from ``sha256(model + "\\0" + text)`` (Gaussian components,
    normalised); token arrays are seeded from their ints joined with spaces and count one
    token per int. Native sizes: 3-small 1536, 3-large 3072, ada-002 1536, others 1536;
    ``dimensions`` gives the renormalised prefix (refused for ada models).
Images
    Each image is a valid 16x16 PNG checkerboard coloured from a hash of model, prompt and
    index. ``url`` results are served at ``GET {emu.url}/files/<name>.png``; GPT image
    models always answer ``b64_json`` (and ``output_format`` ``png``). ``revised_prompt``
    echoes the prompt.
Ids and headers
    ``chatcmpl-<hex>``, ``msg_01<base62>``, ``req_...`` request ids, ``created`` = now,
    ``system_fingerprint`` ``fp_emulator``; OpenAI ``x-ratelimit-*`` and Anthropic
    ``anthropic-ratelimit-*`` headers (remaining 0 on a 429).
Auth
    OpenAI: ``Authorization: Bearer``; errors show at most the key's last 4 characters
    (``****abcd``; nothing for keys shorter than 8). Anthropic: ``x-api-key`` or
    ``Authorization: Bearer``, plus ``anthropic-version`` 2023-06-01 or 2026-10-21; the
    latter rejects ``temperature``/``top_p``/``top_k``.

Faults
======
See :class:`Fault`. Schedule with :meth:`Emulator.add_fault` / :meth:`Emulator.fail_next`,
or per request with the header ``x-emulator-fault: <spec>`` (e.g. ``429;retry-after=2``,
``hang;seconds=2``, ``cut;after=3``, ``stall;after=2;seconds=5``, ``malformed``,
``malformed-body``, ``context-length``, ``reset``, ``slow;seconds=1``,
``stream-error;after=2;type=overloaded_error``); a bad spec gets a 400.
"""

from ._emulator import Emulator, RecordedRequest
from ._faults import Fault

__all__ = ["Emulator", "Fault", "RecordedRequest"]
