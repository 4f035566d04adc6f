"""Entry point of the built-in ``private-search`` agent: the caller's documents, queries in, top-k
passages out.

Documents are split into passages of at most ``passage_words`` words (whitespace-separated; a
passage keeps its words' original spelling), every passage and query is embedded with
all-MiniLM-L6-v2, and each query's hits are the passages with the highest cosine similarity,
computed in float64 row by row (so a score does not depend on how many other passages there are) and
rounded to the reply's decimals. Ties are broken by document, then passage index, so the ranking is
deterministic. Nothing of a call is kept after it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.builtin.minilm import TextEncoder
from agents.runtime import AgentContext, Programs, ProgramSpec

MODEL = "all-MiniLM-L6-v2"


def split_passages(document: str, words_per_passage: int) -> list[str]:
    """Consecutive runs of at most ``words_per_passage`` words; none for a blank document."""
    words = document.split()
    return [
        " ".join(words[i : i + words_per_passage]) for i in range(0, len(words), words_per_passage)
    ]


class PrivateSearchAgent:
    """Embeds all passages and queries of the merged calls together, then ranks per call."""

    def __init__(self, context: AgentContext) -> None:
        self.encoder = TextEncoder(context.weights)
        self.passage_words = int(context.manifest.config.get("passage_words", 120))
        self.default_top_k = int(context.manifest.config.get("default_top_k", 5))
        self.decimals = context.manifest.resources.float_decimals

    def program(self) -> ProgramSpec:
        return self.encoder.program()

    def run(self, inputs: Sequence[Any], programs: Programs) -> list[dict[str, Any]]:
        calls = []
        texts: list[str] = []
        for value in inputs:
            passages = [
                (doc, index, text)
                for doc, document in enumerate(value["documents"])
                for index, text in enumerate(split_passages(document, self.passage_words))
            ]
            calls.append((passages, len(texts), value))
            texts += [text for _, _, text in passages] + list(value["queries"])
        vectors, _ = self.encoder.embed(texts, programs)
        return [self._rank(passages, vectors[start:], value) for passages, start, value in calls]

    def _rank(
        self, passages: list[tuple[int, int, str]], vectors: np.ndarray, value: Any
    ) -> dict[str, Any]:
        top_k = int(value.get("top_k", self.default_top_k))
        passage_vectors = vectors[: len(passages)].astype(np.float64)
        query_vectors = vectors[len(passages) : len(passages) + len(value["queries"])].astype(
            np.float64
        )
        results = []
        for query in query_vectors:
            scores = [round(float(s), self.decimals) for s in (passage_vectors * query).sum(axis=1)]
            order = sorted(
                range(len(passages)), key=lambda i: (-scores[i], passages[i][0], passages[i][1])
            )
            results.append(
                [
                    {
                        "document": passages[i][0],
                        "passage": passages[i][1],
                        "score": scores[i],
                        "text": passages[i][2],
                    }
                    for i in order[:top_k]
                ]
            )
        return {"model": MODEL, "results": results}


def create(context: AgentContext) -> PrivateSearchAgent:
    return PrivateSearchAgent(context)
