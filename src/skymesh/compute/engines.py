"""Inference engines: one loaded model each, called from a worker thread.

Runtimes are imported when an engine loads, never at module import, so a node
without the ``ai`` extra still starts (and says what to install when asked to
serve a model). Engine methods are blocking C calls: the worker pool runs them
in its threads, never on the event loop.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from skymesh.compute.batcher import split_rows
from skymesh.compute.catalog import CHAT, EMBEDDING, ModelSpec, runtime_available
from skymesh.compute.errors import ContextTooLong, RuntimeMissing
from skymesh.errors import BadRequest

EMBED_BATCH = 32  # inputs per ONNX run: bounds padding waste and peak memory


def _require_runtime(spec: ModelSpec) -> None:
    if not runtime_available(spec.kind):
        raise RuntimeMissing(
            f"model {spec.name} needs the {spec.kind} runtime, which is not installed here:"
            " pip install 'skymesh[ai]'"
        )


class EmbeddingEngine:
    """A sentence-transformers model exported to ONNX: WordPiece, mean pooling, L2 norm.

    The same three steps sentence-transformers runs for all-MiniLM-L6-v2, so the
    vectors match the reference model's.
    """

    kind = EMBEDDING

    def __init__(self, spec: ModelSpec, files: Sequence[Path], threads: int = 0) -> None:
        _require_runtime(spec)
        import onnxruntime as ort
        from tokenizers import BertWordPieceTokenizer

        onnx = next((f for f in files if f.suffix == ".onnx"), None)
        vocab = next((f for f in files if f.suffix == ".txt"), None)
        if onnx is None or vocab is None:
            raise BadRequest(f"model {spec.name} needs a .onnx file and a vocab .txt file")
        self.spec = spec
        self.tokenizer = BertWordPieceTokenizer(
            str(vocab), lowercase=True, clean_text=True, handle_chinese_chars=True
        )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # onnxruntime's worker threads spin after each run waiting for the next: it saves
        # microseconds of wake-up and costs whole cores of busy-waiting (measured on 2 shared
        # vCPUs: 23-32 CPU ms per one-text request spinning, 10 without; docs/benchmarks.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> tuple[Any, list[int]]:
        """(n x dimensions float32 array, tokens of each input); too long an input is an
        error."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(list(texts))
        limit = self.spec.context_length
        for i, e in enumerate(encodings):
            if len(e.ids) > limit:
                raise ContextTooLong(
                    f"input[{i}] has {len(e.ids)} tokens; {self.spec.name} takes at most"
                    f" {limit}: split the text"
                )
        out = np.empty((len(encodings), self.spec.dimensions), dtype=np.float32)
        for start in range(0, len(encodings), EMBED_BATCH):
            batch = encodings[start : start + EMBED_BATCH]
            width = max(len(e.ids) for e in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, e in enumerate(batch):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[start : start + len(batch)] = pooled / np.clip(norms, 1e-12, None)
        return out, [len(e.ids) for e in encodings]

    def embed_requests(self, requests: Sequence[Sequence[str]]) -> list[tuple[Any, int]]:
        """Several requests' inputs in one :meth:`embed`: each request's (rows, tokens).

        What the node's micro-batcher runs; an error (too long an input) fails them all,
        and the batcher then runs each alone.
        """
        vectors, tokens = self.embed([t for r in requests for t in r])
        out = []
        for rows in split_rows([len(r) for r in requests], len(tokens)):
            out.append((vectors[rows], sum(tokens[rows])))
        return out


@dataclass
class Generation:
    """What one chat generation produced, besides the streamed text."""

    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


class ChatEngine:
    """A GGUF chat model on llama.cpp, formatted with the model's own chat template.

    Generation runs token by token so the node can stream each piece of text, stop
    on stop strings and count tokens exactly. One generation at a time per engine
    (a llama.cpp context is not thread-safe); the pool's concurrency bounds how
    many engines' worth of work run at once.
    """

    kind = CHAT

    def __init__(self, spec: ModelSpec, files: Sequence[Path], threads: int = 0) -> None:
        _require_runtime(spec)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        gguf = next((f for f in files if f.suffix == ".gguf"), None)
        if gguf is None:
            raise BadRequest(f"model {spec.name} needs a .gguf file")
        self.spec = spec
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=spec.context_length,
            n_threads=threads or None,
            verbose=False,
        )
        self._lock = threading.Lock()
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BadRequest(f"{gguf.name} carries no chat template")
        vocab_token = self.llm._model.token_get_text
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab_token(self.llm.token_eos()),
            bos_token=vocab_token(self.llm.token_bos()),
            add_generation_prompt=True,
        )

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> list[int]:
        prompt = self.formatter(messages=cast(Any, list(messages))).prompt
        return list(self.llm.tokenize(prompt.encode(), add_bos=False, special=True))

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
        """Generate a reply, calling ``emit`` with each new piece of text."""
        import llama_cpp

        with self._lock:
            tokens = self.prompt_tokens(messages)
            room = self.spec.context_length - len(tokens)
            if room <= 0:
                raise ContextTooLong(
                    f"the prompt has {len(tokens)} tokens; {self.spec.name} serves a context"
                    f" of {self.spec.context_length}: shorten the conversation"
                )
            max_tokens = min(max_tokens, room)
            if seed is not None:
                self.llm.set_seed(seed)
            text = StopScanner(stop)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            completion = 0
            finish = "length"
            vocab = self.llm._model.vocab
            for token in self.llm.generate(
                tokens,
                temp=max(temperature, 0.0),
                top_p=top_p,
                top_k=40 if temperature > 0 else 1,
                min_p=0.05 if temperature > 0 else 0.0,
                repeat_penalty=1.0,
                reset=True,
            ):
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                completion += 1
                piece = decoder.decode(self.llm.detokenize([token]))
                ready, hit = text.feed(piece)
                if ready:
                    emit(ready)
                if hit:
                    finish = "stop"
                    break
                if completion >= max_tokens or cancelled():
                    break
            else:
                finish = "length"
            if finish != "stop" or not text.hit:
                rest = text.flush(decoder.decode(b"", final=True))
                if rest:
                    emit(rest)
            return Generation(finish, len(tokens), completion)


class StopScanner:
    """Holds back text that may be the start of a stop string, cuts at the first one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.pending = ""
        self.hit = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text safe to emit now, whether a stop string was reached)."""
        buf = self.pending + piece
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.pending = ""
            self.hit = True
            return buf[:cut], True
        split = max(len(buf) - self.keep, 0)
        self.pending = buf[split:]
        return buf[:split], False

    def flush(self, tail: str = "") -> str:
        out, _ = self.feed(tail)
        out += self.pending
        self.pending = ""
        return out


Engine = EmbeddingEngine | ChatEngine


def load_engine(spec: ModelSpec, files: Sequence[Path], threads: int = 0) -> Engine:
    if spec.kind == EMBEDDING:
        return EmbeddingEngine(spec, files, threads)
    return ChatEngine(spec, files, threads)
