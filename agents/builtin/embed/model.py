"""Entry point of the built-in ``embed`` agent: text(s) → normalised MiniLM embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.builtin.minilm import DIM, TextEncoder
from agents.runtime import AgentContext, Programs, ProgramSpec

MODEL = "all-MiniLM-L6-v2"


class EmbedAgent:
    """Embeds every text of every merged call in one pass; outputs keep each call's order."""

    def __init__(self, context: AgentContext) -> None:
        self.encoder = TextEncoder(context.weights)

    def program(self) -> ProgramSpec:
        return self.encoder.program()

    def run(self, inputs: Sequence[Any], programs: Programs) -> list[dict[str, Any]]:
        per_call = [
            [value["input"]] if isinstance(value["input"], str) else value["input"]
            for value in inputs
        ]
        vectors, tokens = self.encoder.embed(
            [text for texts in per_call for text in texts], programs
        )
        outputs, start = [], 0
        for texts in per_call:
            end = start + len(texts)
            outputs.append(
                {
                    "model": MODEL,
                    "dimensions": DIM,
                    "embeddings": vectors[start:end].tolist(),
                    "tokens": tokens[start:end],
                }
            )
            start = end
        return outputs


def create(context: AgentContext) -> EmbedAgent:
    return EmbedAgent(context)
