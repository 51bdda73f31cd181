"""Generation: batched (left padding, prompts sorted by length), greedy by default.

Stops at EOS and at the template's next-turn marker. The sequential one-prompt-at-a-time loop
is kept as the baseline the benchmark compares against; both share `_generate_batch`, so the
only difference between them is the batching.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Event, Thread
from typing import Any

from autotrain_runner.config.templates import NAMED, PromptTemplate
from autotrain_runner.rendering import DEFAULT_THINKING, Renderer, generation_eos_ids


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    batch_size: int = 16

    def describe(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "batch_size": self.batch_size,
            "decoding": "greedy" if self.temperature == 0 else "sampling",
        }


@dataclass
class Generated:
    text: str
    finished: bool  # stopped at EOS or a stop marker, not at max_new_tokens
    new_tokens: int
    ids: tuple[int, ...] = ()  # the answer's token ids, up to its end (what engines are compared on)


def release_memory() -> None:
    """Free what a model left behind, so that a training child process gets the GPU."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class TokenizerSide:
    """What every engine shares: the run's tokenizer and its renderer (`rendering.Renderer`: how a
    conversation becomes prompt ids, where answers end), and how generated ids become an answer.
    An engine renders, counts and decodes here, so that HF and vLLM give the same prompts the same
    ids as training did, and cut answers the same way."""

    def __init__(self, model: str, adapter: Path | None = None):
        from transformers import AutoTokenizer

        # The run's output folder holds the tokenizer AutoTrain trained with (chatml/zephyr add tokens).
        tokenizer_source = adapter if adapter and (adapter / "tokenizer_config.json").is_file() else model
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.generation_eos: list[int] = generation_eos_ids(model)
        self.renderer = Renderer(self.tokenizer, NAMED["tokenizer"], generation_eos=self.generation_eos)
        self.eos_ids: list[int] = self.renderer.end_ids

    def attach(self, template: PromptTemplate, thinking: str = DEFAULT_THINKING) -> None:
        """Render with the run's template: its prompts, and its end markers among the end ids."""
        self.renderer = Renderer(self.tokenizer, template, thinking, self.generation_eos)
        self.eos_ids = self.renderer.end_ids

    def _add_configured_eos(self, generation_config: Any) -> None:
        """The tokenizer's EOS and the generation config's: instruct models often end a turn with a
        token of their own (Gemma 3's <end_of_turn>, Llama 3.1's <|eom_id|>) listed only there."""
        configured = getattr(generation_config, "eos_token_id", None)
        configured = configured if isinstance(configured, list) else [configured]
        self.generation_eos = [i for i in dict.fromkeys([*self.generation_eos, *configured]) if i is not None]
        self.attach(self.renderer.template, self.renderer.thinking)

    def stop_strings(self) -> tuple[str, ...]:
        """Where an answer ends besides its end ids, for the attached template: a text layout's own
        stop markers, or what a chat template writes to open the next turn."""
        return self.renderer.stop_strings()

    def encode(self, prompt: str) -> list[int]:
        """A rendered prompt's ids, by the renderer's rule (the tokenizer's BOS unless the text has it)."""
        return self.renderer.encode(prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def _decode(self, ids: list[int], settings: Settings, stop: Sequence[str]) -> Generated:
        """The answer up to its end (EOS or a stop marker); `finished` only when the model ended it.

        An answer cut at `max_new_tokens` may end inside a character that byte-level tokens spell
        over several tokens (a Korean syllable is three bytes): those last tokens are dropped
        rather than shown as U+FFFD.
        """
        ends = [ids.index(eos) for eos in self.eos_ids if eos in ids]
        finished = bool(ends)
        if finished:
            ids = ids[: min(ends)]
        pad = self.tokenizer.pad_token_id
        while ids and ids[-1] == pad:
            ids.pop()
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        for marker in stop:
            if marker in text:
                text, finished = text.split(marker, 1)[0], True
        if not finished:
            text = self._whole_characters(ids, text)
        return Generated(text.strip(), finished, len(ids), tuple(ids))

    def _whole_characters(self, ids: list[int], text: str) -> str:
        """`text` (the decoded `ids`) without a character that the cut left incomplete."""
        kept = list(ids)
        while text.endswith(REPLACEMENT) and kept and len(ids) - len(kept) < 4:
            kept.pop()
            text = self.tokenizer.decode(kept, skip_special_tokens=False)
        return text

    def answer_ids(self, messages: list[dict[str, str]], reference: str) -> tuple[list[int], int] | None:
        """The ids of a prompt followed by its reference answer and its end, and where the answer
        starts: what the held-out loss scores, tokenized exactly as training tokenized it."""
        try:
            sample = self.renderer.sample([*messages, {"role": "assistant", "content": reference}])
        except ValueError:
            return None
        return sample.ids, sample.answer_start


class Streamed:
    """An answer as it is generated: iterate for the text shown so far (anything that could be the
    start of a stop marker held back, the EOS never shown), then `generated` holds the whole answer.
    `cancel` is what the generation checks at every step: a reader that stops early (a client that
    hung up, Ctrl-C) sets it, so that what is left of the generation is one step, not the whole answer."""

    def __init__(
        self,
        pieces: Iterator[str],
        finish: Callable[[], Generated],
        stop: Sequence[str],
        eos: str | None,
        cancel: Event,
    ):
        self._pieces, self._finish, self._stop, self._eos = pieces, finish, tuple(stop), eos or ""
        self.cancel = cancel
        self.generated: Generated | None = None
        self._ended = False  # every piece read: a streamer that has ended must not be read again

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._shown()
        finally:
            if not self._ended:  # the reader stopped early: generation ends at its next step
                self.cancel.set()
                for _ in self._pieces:
                    pass
                self._ended = True
                with contextlib.suppress(Exception):
                    self.generated = self._finish()

    def _shown(self) -> Iterator[str]:
        pending, shown, stopped = "", "", False
        hold = max((len(m) for m in self._stop), default=0)
        for piece in self._pieces:
            pending += piece.replace(self._eos, "") if self._eos else piece
            cut = min((pending.index(m) for m in self._stop if m in pending), default=None)
            if cut is not None:
                pending, stopped = pending[:cut], True
                break
            # a trailing U+FFFD is a character still incomplete: it waits for the bytes that finish it
            safe = min(len(pending) - hold, len(pending.rstrip(REPLACEMENT)))
            if safe > 0:
                shown += pending[:safe]
                yield pending[:safe]
                pending = pending[safe:]
        if stopped:  # the rest, unshown, so that generation ends (an ended streamer must not be read again)
            for _ in self._pieces:
                pass
        self._ended = True
        self.generated = self._finish()
        # What was held back, as the whole answer has it (a character the cut left incomplete is
        # dropped there); the pieces shown and this tail add up to `generated.text`.
        final, start = self.generated.text, shown.lstrip()
        tail = final[len(start) :] if final.startswith(start) else pending.rstrip(REPLACEMENT)
        if tail:
            yield tail


class HFBackend(TokenizerSide):
    """transformers + the PEFT adapter, in process; fp32 on CPU, bf16/fp16 on CUDA, 4-bit on request
    (bitsandbytes >= 0.49 quantizes on the CPU too, so an int4 run is evaluated as it was trained)."""

    def __init__(self, model: str, adapter: Path | None = None, load_in_4bit: bool = False):
        import torch
        from transformers import AutoModelForCausalLM

        super().__init__(model, adapter)
        cuda = torch.cuda.is_available()
        kwargs: dict[str, Any] = {"dtype": torch.float32}
        if cuda:
            kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["device_map"] = "auto"
        if load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kwargs["dtype"]
            )
        self.model = AutoModelForCausalLM.from_pretrained(model, **kwargs)
        if len(self.tokenizer) > self.model.get_input_embeddings().weight.shape[0]:
            self.model.resize_token_embeddings(len(self.tokenizer))
        if adapter is not None:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter))
        self.model.eval()
        self.device = next(self.model.parameters()).device
        self._add_configured_eos(getattr(self.model, "generation_config", None))
        self.description = {
            "backend": "hf",
            "engine": "hf (transformers generate)",
            "model": model,
            "adapter": str(adapter) if adapter else None,
            "dtype": str(kwargs["dtype"]).removeprefix("torch."),
            "device": str(self.device),
            "load_in_4bit": bool(load_in_4bit),
        }

    @property
    def context_window(self) -> int:
        """The model's positions, else the tokenizer's maximum, else 2048."""
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", 0) or 0
        if isinstance(positions, int) and positions > 0:
            return positions
        limit = getattr(self.tokenizer, "model_max_length", 0) or 0
        return int(limit) if isinstance(limit, int) and 0 < limit < 10**9 else 2048  # 1e30 means "unset"

    def generate(
        self,
        prompts: Sequence[str],
        settings: Settings,
        stop: Sequence[str] = (),
        progress=None,
    ) -> list[Generated]:
        """Batched: prompts sorted by token length so that a batch pads little; results in input order."""
        lengths = [self.count_tokens(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        results: list[Generated | None] = [None] * len(prompts)
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            made = self._generate_batch([prompts[i] for i in batch], settings, stop)
            for index, generated in zip(batch, made, strict=True):
                results[index] = generated
            if progress:
                progress(len(batch), sum(g.new_tokens for g in made))
        return [r for r in results if r is not None]

    def prefill(self, prompts: Sequence[str], batch_size: int) -> None:
        """One forward pass over the prompts, batched as `generate` does, keeping only the last logits."""
        import torch

        order = sorted(prompts, key=self.count_tokens)
        for start in range(0, len(order), batch_size):
            encoded = self._padded(order[start : start + batch_size])
            with torch.no_grad():
                self.model(**{k: v.to(self.device) for k, v in encoded.items()}, num_logits_to_keep=1)

    def stream(
        self,
        prompt: str,
        settings: Settings,
        stop: Sequence[str],
        cancel: Event | None = None,
        asked: Sequence[str] = (),
    ) -> Streamed:
        """Generate in a thread, the text arriving through a `TextIteratorStreamer`. `stop` are the
        template's markers; `asked`, stop strings a request adds (`atr serve`'s `stop`)."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=False)
        result: dict[str, Any] = {}
        cancel = cancel or Event()

        def run() -> None:
            try:
                result["generated"] = self._generate_batch([prompt], settings, stop, streamer, cancel, asked)[0]
            except BaseException as exc:
                result["error"] = exc
                streamer.end()

        thread = Thread(target=run, daemon=True)
        thread.start()

        def finish() -> Generated:
            thread.join()
            if "error" in result:
                raise result["error"]
            return result["generated"]

        return Streamed(iter(streamer), finish, (*stop, *asked), self.tokenizer.eos_token, cancel)

    def _padded(self, prompts: Sequence[str]) -> dict[str, Any]:
        """The prompts' ids (the renderer's), left-padded into one batch on the model's device; no
        token_type_ids, which Llama's generate rejects."""
        batch = self.tokenizer.pad({"input_ids": [self.encode(p) for p in prompts]}, return_tensors="pt")
        return {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask")}

    def answer_losses(self, spans: Sequence[tuple[list[int], int]]) -> list[float]:
        """Teacher-forced: the summed loss (nats) of the answer tokens of each (ids, answer start)."""
        import torch

        losses = []
        for full, start in spans:
            ids = torch.tensor([full], device=self.device)
            labels = ids.clone()
            labels[0, :start] = -100
            with torch.no_grad():
                losses.append(self.model(input_ids=ids, labels=labels).loss.item() * (len(full) - start))
        return losses

    def answer_loss(self, spans: Sequence[tuple[list[int], int]]) -> tuple[float, int]:
        return sum(self.answer_losses(spans)), sum(len(full) - start for full, start in spans)  # and the count

    def _stop_criteria(self, stop: tuple[str, ...]):
        """`StopStringCriteria` for `stop`, built once per backend. Passed as `stop_strings`, transformers
        builds it for every `generate` call, scanning the whole vocabulary each time (its cache key is
        the vocabulary in `get_vocab()`'s order, which changes between calls): 7 s a batch on 2 cores
        with a 128k vocabulary (Llama 3), against milliseconds for the generation itself."""
        if not stop:
            return None
        cache = self.__dict__.setdefault("_stop_criteria_cache", {})
        if stop not in cache:
            from transformers import StoppingCriteriaList, StopStringCriteria

            cache[stop] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stop))])
        return cache[stop]

    def generate_sequential(
        self, prompts: Sequence[str], settings: Settings, stop: Sequence[str] = ()
    ) -> list[Generated]:
        """The plain loop people write: one prompt at a time (the benchmark's baseline)."""
        return [self._generate_batch([p], settings, stop)[0] for p in prompts]

    def _generate_batch(
        self,
        prompts: list[str],
        settings: Settings,
        stop: Sequence[str],
        streamer=None,
        cancel: Event | None = None,
        asked: Sequence[str] = (),
    ) -> list[Generated]:
        import torch
        from transformers import StoppingCriteriaList

        encoded = self._padded(prompts)
        width = encoded["input_ids"].shape[1]
        sampling = settings.temperature > 0
        criteria = StoppingCriteriaList(self._stop_criteria(tuple(stop)) or [])
        if asked:
            criteria.append(_TextStop(self.tokenizer, width, asked))
        if cancel is not None:
            criteria.append(lambda ids, scores, **_: torch.full((ids.shape[0],), cancel.is_set(), device=ids.device))
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                max_new_tokens=settings.max_new_tokens,
                do_sample=sampling,
                temperature=settings.temperature if sampling else None,
                top_p=settings.top_p if sampling else None,
                top_k=None,
                repetition_penalty=settings.repetition_penalty,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.eos_ids or None,
                stopping_criteria=criteria,
                streamer=streamer,
            )
        return [self._decode(row[width:].tolist(), settings, (*stop, *asked)) for row in output]


class _TextStop:
    """Stop strings a request asks for, found in the last tokens decoded at each step: a `StopStringCriteria`
    scans the whole vocabulary when built (seconds with 128k tokens), for every new set a client sends."""

    def __init__(self, tokenizer: Any, width: int, stop: Sequence[str]):
        self.tokenizer, self.width, self.stop = tokenizer, width, tuple(stop)
        self.tail = 4 * max(len(s) for s in stop) + 4  # tokens: a character is at most 4 bytes, a token 1 or more

    def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self.width, ids.shape[1] - self.tail)
        texts = self.tokenizer.batch_decode(ids[:, start:], skip_special_tokens=False)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=ids.device)


REPLACEMENT = "\ufffd"  # what decoding shows for bytes that are not a whole UTF-8 character


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
