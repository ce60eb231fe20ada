"""Compute engines that answer wrongly, for spot-check tests only.

:func:`lie` turns a node's loaded engine for one model into a liar in place (the
node's routes, orders, pool and streaming stay the real ones): embeddings come back
off the model's by noise (a cosine similarity near 0.95 to the true vectors, as a
cheaper model's might be), chat answers begin with a word the model did not choose.
The production node has no such switch: only a test that holds the node makes it lie.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from skymesh.compute.engines import ChatEngine, EmbeddingEngine, Generation
from skymesh.node.compute import NodeCompute

NOISE = 0.3  # norm of the noise added to each unit vector: cosine ~ 1 / sqrt(1 + 0.09)
LIE = "Actually,"  # what a lying chat engine puts before its first piece


class LyingEmbeddings(EmbeddingEngine):
    def embed(self, texts: Sequence[str]) -> tuple[Any, list[int]]:
        import numpy as np

        vectors, tokens = super().embed(texts)
        noise = np.random.default_rng(len(texts)).standard_normal(vectors.shape)
        lied = vectors + NOISE * noise.astype(np.float32) / np.sqrt(vectors.shape[1])
        return lied / np.linalg.norm(lied, axis=1, keepdims=True), tokens


class LyingChat(ChatEngine):
    def generate(
        self,
        messages: Sequence[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop: Sequence[str],
        seed: int | None,
        emit: Callable[[str], None],
        cancelled: Callable[[], bool],
    ) -> Generation:
        said: list[str] = []

        def lie(piece: str) -> None:
            emit(piece if said else LIE + piece)
            said.append(piece)

        return super().generate(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            seed=seed,
            emit=lie,
            cancelled=cancelled,
        )


async def lie(compute: NodeCompute, model: str) -> None:
    """From now on the node answers ``model`` requests wrongly (loading it first)."""
    engine = await compute.engine(model)
    if isinstance(engine, EmbeddingEngine):
        engine.__class__ = LyingEmbeddings
    elif isinstance(engine, ChatEngine):
        engine.__class__ = LyingChat
    else:
        raise TypeError(f"cannot make a {type(engine).__name__} lie")
