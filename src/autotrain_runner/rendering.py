"""One renderer: how a conversation becomes the token ids of a prompt, and a training sample the
ids of a prompt followed by its answer, for every path that touches a model.

Training (both LOSS_ON modes, the held-out loss), evaluation (HF and vLLM), chat, serve and the
benchmarks all go through `Renderer`, so that one conversation gives one list of ids everywhere:

- the prompt is rendered by the run's template (a chat template with `add_generation_prompt`, or
  a text layout) and tokenized without the tokenizer's special tokens; the tokenizer's own leading
  tokens (Llama 3's `<|begin_of_text|>`, Gemma's `<bos>`) are put in front only when the rendered
  text does not already begin with them. A template that writes `{{ bos_token }}` on a tokenizer
  that adds one gets one BOS, not two; a template that writes none on such a tokenizer gets the
  BOS the model was trained with;
- a training sample is the prompt's ids followed by the final answer's, the answer tokenized on
  its own up to and including the end markers the template writes after it (`<|eot_id|>`,
  `<|im_end|><|endofturn|>`), or the EOS where the layout writes none. The prompt's ids are the
  generation prompt's ids by construction;
- generation ends at any end id: the tokenizer's EOS, the generation config's list, and the
  markers the template writes after an answer;
- `THINKING` is passed the same way at every render: `off` renders with `enable_thinking=False`
  (a thinking template then writes its empty think block into the prompt, where training and
  generation both have it), `on` with `enable_thinking=True`, `template` passes nothing.

The tokenizer is any `transformers` tokenizer; nothing here imports a model library.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner.config.templates import PromptTemplate

THINKING_MODES = ("off", "on", "template")
DEFAULT_THINKING = "off"
_PROBE = "ATR-probe"


@dataclass(frozen=True)
class Sample:
    """A training (or held-out) sample: its ids, and where the answer starts (the loss falls from there)."""

    ids: list[int]
    answer_start: int


@dataclass(frozen=True)
class Pair:
    """A preference pair: the prompt's ids, and the chosen and the rejected answer's ids (each with its end)."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


class RenderError(ValueError):
    """A conversation this template cannot render as a prompt and an answer (names what and why)."""


def special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a text when asked for its special tokens."""
    bare = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    return [], []


def generation_eos_ids(model_path: str | Path | None) -> list[int]:
    """The end ids a model's `generation_config.json` lists (instruct models often end a turn with a
    token listed only there: Gemma 3's `<end_of_turn>`, Llama 3.1's `<|eom_id|>`)."""
    if model_path is None:
        return []
    path = Path(model_path) / "generation_config.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int)]


class Renderer:
    """The run's template and tokenizer, with the tokenizer's special-token rules taken into account."""

    def __init__(
        self,
        tokenizer,
        template: PromptTemplate,
        thinking: str = DEFAULT_THINKING,
        generation_eos: Sequence[int] = (),
    ):
        if thinking not in THINKING_MODES:
            raise ValueError(f"THINKING must be one of {', '.join(THINKING_MODES)}, not {thinking!r}")
        self.tokenizer = tokenizer
        self.template = template
        self.thinking = thinking
        self.generation_eos = list(generation_eos)
        self.prefix, _ = special_affixes(tokenizer)
        self.answer_end_ids = self._answer_end_ids() if self.chat else []
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self.end_ids = [i for i in dict.fromkeys([*eos, *generation_eos, *self.answer_end_ids]) if i is not None]

    @property
    def chat(self) -> bool:
        return self.template.is_chat

    def template_kwargs(self) -> dict[str, Any]:
        """What every chat-template render is given besides the messages."""
        if self.thinking == "template":
            return {}
        return {"enable_thinking": self.thinking == "on"}

    # --- prompts

    def conversation(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages as rendered: with THINKING=off, reasoning in the data (`reasoning_content`, a
        leading `<think>...</think>` block of an answer) is dropped, as the model is not to think."""
        if self.thinking != "off":
            return list(messages)
        kept = []
        for message in messages:
            if message.get("role") == "assistant":
                message = {k: v for k, v in message.items() if k not in ("reasoning_content", "reasoning")}
                content = message.get("content")
                if isinstance(content, str) and content.lstrip().startswith("<think>") and "</think>" in content:
                    message["content"] = content.split("</think>", 1)[1].lstrip()
            kept.append(message)
        return kept

    def prompt_text(self, messages: Sequence[dict[str, Any]]) -> str:
        """The prompt as text: the conversation so far, ending where the model's answer begins."""
        messages = self.conversation(messages)
        if self.chat:
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True, **self.template_kwargs()
            )
        return self.template.render(list(messages), add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        """A rendered text's ids: the tokenizer's leading special tokens, unless the text already
        begins with them, then the text without any special tokens added."""
        ids = list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        if self.prefix and ids[: len(self.prefix)] != self.prefix:
            ids = [*self.prefix, *ids]
        return ids

    def prompt_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        return self.encode(self.prompt_text(messages))

    # --- training samples

    def split(self, messages: Sequence[dict[str, Any]]) -> tuple[str, str]:
        """The prompt and the final answer as the whole conversation renders them; the answer ends
        at its end markers (whitespace after them dropped) or, in a text layout, at its last character."""
        messages = self.conversation(messages)
        if not messages or messages[-1].get("role") != "assistant":
            raise RenderError("the conversation does not end with an assistant answer")
        prompt = self.prompt_text(messages[:-1])
        if not self.chat:
            answer = messages[-1]["content"] + self.template.assistant_suffix
            return prompt, answer
        whole = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=False, **self.template_kwargs()
        )
        if whole.startswith(prompt):
            return prompt, self._ending_at_end_marker(whole[len(prompt) :])
        return prompt, self._ending_at_end_marker(self._answer_after_opener(messages, prompt, whole))

    def _answer_after_opener(self, messages: list[dict[str, Any]], prompt: str, whole: str) -> str:
        """The rendered answer of a template that renders the prompt differently inside the whole
        conversation (Mistral v0.3 writes the system prompt only before a last user message): what
        follows the last user message and the answer's opener (`[/INST]`) in the whole rendering.
        The sample is then the generation prompt, as inference sees it, and that answer."""
        last_user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        at = prompt.rfind(last_user) if isinstance(last_user, str) and last_user else -1
        opener = prompt[at + len(last_user) :] if at >= 0 else ""
        found = whole.rfind(last_user + opener) if at >= 0 and opener else -1
        if found < 0:
            raise RenderError(
                "the chat template renders the prompt differently on its own than inside the conversation, "
                f"so the answer cannot be told apart (prompt ends {prompt[-60:]!r}); set LOSS_ON=all"
            )
        return whole[found + len(last_user) + len(opener) :]

    def sample(self, messages: Sequence[dict[str, Any]]) -> Sample:
        """The ids of the prompt followed by the final answer and its end."""
        prompt, answer = self.split(messages)
        return self._joined(prompt, answer)

    def text_sample(self, text: str) -> Sample:
        """A text layout's rendered sample (`atr data` wrote it): cut after the last answer marker."""
        cut = answer_start(text, self.template.assistant_prefix)
        if cut is None:
            raise RenderError(f"no answer marker {self.template.assistant_prefix.strip()!r}")
        return self._joined(text[:cut], text[cut:])

    def pair(self, prompt: Sequence[dict[str, Any]], chosen: str, rejected: str) -> Pair:
        """A preference pair as ids: the prompt exactly as generation encodes it, then each answer with
        its end, as `sample` renders a conversation that ends with that answer."""
        first = self.sample([*prompt, {"role": "assistant", "content": chosen}])
        second = self.sample([*prompt, {"role": "assistant", "content": rejected}])
        prompt_ids = first.ids[: first.answer_start]
        if second.ids[: second.answer_start] != prompt_ids:  # pragma: no cover - the prompt is rendered alone
            raise RenderError("the prompt renders differently before the chosen and the rejected answer")
        return Pair(prompt_ids, first.ids[first.answer_start :], second.ids[second.answer_start :])

    def whole(self, value: str | list[dict[str, Any]]) -> list[int]:
        """LOSS_ON=all: the whole conversation's ids (a stored sample: messages, or rendered text)."""
        if self.chat:
            messages = self.conversation(as_messages(value))
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False, **self.template_kwargs()
            )
            return self._ended(self.encode(self._ending_at_end_marker(text)))
        return self._ended(self.encode(str(value)))

    def document(self, value: str | list[dict[str, Any]]) -> list[int]:
        """A text to train on as a whole (TRAINER=default): stored messages rendered by the template,
        any other text as it is; one BOS, and the end."""
        if self.chat and (isinstance(value, list) or str(value).lstrip().startswith("[{")):
            return self.whole(value)
        return self._ended(self.encode(str(value)))

    def stored_sample(self, value: str | list[dict[str, Any]]) -> Sample:
        """A sample as the built dataset stores it: messages (or their Python literal), or rendered text."""
        return self.sample(as_messages(value)) if self.chat else self.text_sample(str(value))

    def _joined(self, prompt: str, answer: str) -> Sample:
        prompt_ids = self.encode(prompt)
        answer_ids = self._ended(list(self.tokenizer(answer, add_special_tokens=False, verbose=False)["input_ids"]))
        return Sample([*prompt_ids, *answer_ids], len(prompt_ids))

    def _ended(self, ids: list[int]) -> list[int]:
        """`ids`, ending where the model stops: at the EOS or an end id of its generation config.
        A template whose turn end is neither (HyperCLOVA X SEED's `<|im_end|>`, whose model ends
        with `<|im_end|><|endofturn|>`; a text layout) gets the EOS after it."""
        eos = self.tokenizer.eos_token_id
        if eos is None or (ids and ids[-1] in (eos, *self.generation_eos)):
            return ids
        return [*ids, eos]

    def _ending_at_end_marker(self, text: str) -> str:
        """`...<|im_end|>\n` -> `...<|im_end|>`: what follows a turn's end marker is the next turn's."""
        stripped = text.rstrip()
        markers = [self.tokenizer.convert_ids_to_tokens(i) for i in self.end_ids]
        return stripped if any(m and stripped.endswith(m) for m in markers) else text

    # --- where answers end

    def _answer_end_ids(self) -> list[int]:
        """The special tokens a chat template writes right after an answer (`<|eot_id|>`,
        `<|im_end|><|endofturn|>`, `<end_of_turn>`): each one ends an answer."""
        conversation = [{"role": "user", "content": "ATR-Q"}, {"role": "assistant", "content": "ATR-A"}]
        try:
            text = self.tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=False, **self.template_kwargs()
            )
        except Exception:  # a template that refuses this shape: the EOS alone ends an answer
            return []
        if "ATR-A" not in text:
            return []
        tail = self.tokenizer(text.rsplit("ATR-A", 1)[1], add_special_tokens=False, verbose=False)["input_ids"]
        specials = set(self.tokenizer.all_special_ids)
        ends = []
        for token in tail:
            if token not in specials:
                break
            ends.append(token)
        return ends

    def stop_strings(self) -> tuple[str, ...]:
        """Where an answer ends besides its end ids: a text layout's stop markers, or what a chat
        template writes to open the next turn (`<|im_start|>`, `<|start_header_id|>`)."""
        if not self.chat:
            return tuple(self.template.stop)
        return chat_stop_strings(self.tokenizer, self.template_kwargs(), self.end_ids)

    def end_markers(self) -> list[str]:
        """The end ids as tokens (what `atr check`, run.json and the families' table name)."""
        return [str(self.tokenizer.convert_ids_to_tokens(i)) for i in self.end_ids]


def chat_stop_strings(tokenizer, kwargs: dict[str, Any] | None = None, end_ids: Sequence[int] = ()) -> tuple[str, ...]:
    """The markers a chat template writes between an answer and the next user turn, less the end
    tokens (which stop by their ids): `<|im_start|>` for ChatML, `<|start_header_id|>` for Llama 3.

    The special tokens found there, or else its first line (`<|user|>` for Zephyr-like layouts).
    """
    conversation = [
        {"role": "user", "content": "ATR-Q"},
        {"role": "assistant", "content": "ATR-A"},
        {"role": "user", "content": "ATR-N"},
    ]
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, **(kwargs or {}))
    except Exception:  # a template that refuses this shape: the end ids alone end the answer
        return ()
    if "ATR-A" not in text or "ATR-N" not in text:
        return ()
    between = text.split("ATR-A", 1)[1].split("ATR-N", 1)[0]
    ends = {tokenizer.convert_ids_to_tokens(i) for i in end_ids}
    ignore = {tokenizer.eos_token, tokenizer.pad_token, None, "", *ends}
    specials = [t for t in dict.fromkeys(tokenizer.all_special_tokens) if t not in ignore and t in between]
    if specials:
        return tuple(sorted(specials, key=between.index))
    rest = between
    for end in filter(None, [tokenizer.eos_token, *ends]):
        rest = rest.replace(end, "\n")
    first = next((line.strip() for line in rest.splitlines() if line.strip()), "")
    return (first,) if first else ()


def as_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored conversation: a list of messages, or its JSON or Python literal (AutoTrain's CSV form)."""
    if isinstance(value, list):
        return value
    text = str(value)
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise RenderError(f"not a list of messages: {text[:80]!r}") from None
    if not isinstance(parsed, list):
        raise RenderError(f"not a list of messages: {text[:80]!r}")
    return parsed


def prompt_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A preference row's prompt: its messages (a list, or its JSON), or a text that is one user message."""
    if isinstance(value, list):
        return value
    text = str(value)
    if text.lstrip().startswith("[{"):
        return as_messages(text)
    return [{"role": "user", "content": text}]


def answer_start(text: str, marker: str) -> int | None:
    """Where the final answer of a rendered text begins: after the last answer marker and the
    whitespace that follows it (`### 답변:\n` and `### 답변: ` alike); None without a marker."""
    marker = marker.strip()
    at = text.rfind(marker) if marker else -1
    if at < 0:
        return None
    cut = at + len(marker)
    while cut < len(text) and text[cut].isspace():
        cut += 1
    return cut
