"""The built-in ``private-search`` agent on a small handmade corpus."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.errors import InputError, InputTooLargeError
from agents.runtime import AgentRuntime

CORPUS = [
    "Boil the pasta in plenty of salted water for nine minutes, then drain it and toss it with "
    "tomato sauce and fresh basil.",
    "The striker scored twice in the second half and the home team won the football match 3-1.",
    "Plants use photosynthesis to turn sunlight, water and carbon dioxide into glucose and oxygen.",
    "Shares fell sharply on the stock exchange after the central bank raised interest rates.",
    "The volcano erupted overnight, sending ash and lava down its slopes and forcing villages "
    "to evacuate.",
    "In Python, a list comprehension builds a new list by applying an expression to each item "
    "of an iterable.",
    "She tuned her guitar, then played a slow blues progression in the key of E.",
    "The rocket lifted off from the launch pad and placed the satellite into orbit.",
]

QUERIES = {
    "How do I cook spaghetti?": 0,
    "Who won the soccer game?": 1,
    "How do plants make food from light?": 2,
    "Why did the stock market drop?": 3,
    "Eruption of a mountain with lava": 4,
    "How to write a list comprehension in Python": 5,
    "Playing music on a string instrument": 6,
    "Launching a satellite into space": 7,
}


def search(
    runtime: AgentRuntime, documents: list[str], queries: list[str], top_k: int
) -> list[list[dict[str, Any]]]:
    request = {"documents": documents, "queries": queries, "top_k": top_k}
    results: list[list[dict[str, Any]]] = runtime.invoke(request).output["results"]
    return results


def test_each_query_finds_its_document_first(search_runtime: AgentRuntime) -> None:
    results = search(search_runtime, CORPUS, list(QUERIES), top_k=3)
    assert [hits[0]["document"] for hits in results] == list(QUERIES.values())
    for hits in results:
        assert len(hits) == 3
        scores = [hit["score"] for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert hits[0]["score"] > hits[1]["score"] + 0.1
        assert hits[0]["text"] == CORPUS[hits[0]["document"]]


def test_scores_are_cosine_similarities_of_the_embeddings(
    search_runtime: AgentRuntime, embed_runtime: AgentRuntime
) -> None:
    query = "How do plants make food from light?"
    hits = search(search_runtime, CORPUS, [query], top_k=len(CORPUS))[0]
    vectors = embed_runtime.invoke({"input": [*CORPUS, query]}).output["embeddings"]
    expected = np.asarray(vectors[:-1]) @ np.asarray(vectors[-1])
    for hit in hits:
        assert hit["score"] == pytest.approx(expected[hit["document"]], abs=1e-5)


def test_long_documents_are_split_into_passages(search_runtime: AgentRuntime) -> None:
    filler = " ".join(["Weather reports mention clouds, wind and rain over the coast."] * 20)
    document = f"{filler} {CORPUS[2]}"
    hits = search(search_runtime, [CORPUS[0], document], ["photosynthesis in plants"], top_k=10)[0]
    assert {(hit["document"], hit["passage"]) for hit in hits} == {(0, 0), (1, 0), (1, 1)}
    assert (hits[0]["document"], hits[0]["passage"]) == (1, 1)
    assert "glucose" in hits[0]["text"]


def test_top_k_larger_than_the_corpus_returns_every_passage(search_runtime: AgentRuntime) -> None:
    hits = search(search_runtime, CORPUS[:2], ["anything"], top_k=32)[0]
    assert sorted(hit["document"] for hit in hits) == [0, 1]


def test_ties_are_broken_by_document_order(search_runtime: AgentRuntime) -> None:
    hits = search(search_runtime, [CORPUS[3], CORPUS[1], CORPUS[3]], ["stock market"], top_k=3)[0]
    assert [hit["document"] for hit in hits] == [0, 2, 1]
    assert hits[0]["score"] == hits[1]["score"]


def test_blank_documents_have_no_passages(search_runtime: AgentRuntime) -> None:
    hits = search(search_runtime, ["   ", CORPUS[4]], ["volcano"], top_k=5)[0]
    assert [hit["document"] for hit in hits] == [1]


def test_results_are_deterministic_bytes(search_runtime: AgentRuntime) -> None:
    request = {"documents": CORPUS, "queries": list(QUERIES)[:2], "top_k": 4}
    assert search_runtime.invoke(request).body == search_runtime.invoke(request).body


def test_default_top_k_is_five(search_runtime: AgentRuntime) -> None:
    output = search_runtime.invoke({"documents": CORPUS, "queries": ["music"]}).output
    assert len(output["results"][0]) == 5


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        ({"documents": CORPUS, "queries": "music"}, InputError, "expected array, got string"),
        ({"documents": CORPUS, "queries": ["q"], "top_k": 0}, InputError, "below the minimum 1"),
        ({"documents": CORPUS, "queries": ["q"] * 17}, InputTooLargeError, "17 items, at most 16"),
        ({"documents": ["d"] * 257, "queries": ["q"]}, InputTooLargeError, "257 items"),
        ({"queries": ["q"]}, InputError, "missing required field(s) ['documents']"),
    ],
)
def test_bad_requests_are_rejected(
    search_runtime: AgentRuntime,
    request_body: dict[str, Any],
    error: type[InputError],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        search_runtime.invoke(request_body)
    assert message in str(caught.value)
