"""One prompt template renders both the training text and the generation prompt.

`PROMPT_TEMPLATE` names one: a text layout (`instruct-ko`, `instruct-en`, or a JSON file of
your own), rendered here into a `text` column; or a chat template (`tokenizer`, `chatml`,
`zephyr`), where the dataset keeps `messages` and AutoTrain renders them with the tokenizer's
template, exactly as generation does. A rendered training sample ends with the last answer:
the SFT trainer then appends EOS, which is where the model learns to stop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from autotrain_runner.errors import ConfigError
from autotrain_runner.redact import SecretMatcher

CHAT_TEMPLATES = ("tokenizer", "chatml", "zephyr")
_SHAPES = SecretMatcher(urls=False)  # token shapes only


class TemplateKind(StrEnum):
    TEXT = "text"  # a layout rendered here, into a `text` column
    CHAT = "chat"  # the tokenizer's chat template renders `messages`


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    kind: TemplateKind
    system: str = "{content}"
    user: str = "{content}"
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    separator: str = "\n\n"
    stop: tuple[str, ...] = ()

    @property
    def is_chat(self) -> bool:
        return self.kind == TemplateKind.CHAT

    @property
    def dataset_column(self) -> str:
        """The column `atr data` writes the samples in: `messages` for a chat template, `text` for a layout."""
        return "messages" if self.is_chat else "text"

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The training text (whole conversation), or with `add_generation_prompt` the prompt
        that ends where the model's answer begins."""
        if self.is_chat:
            raise ValueError(f"{self.name} is rendered by the tokenizer's chat template")
        parts = []
        for message in messages:
            content = message["content"]
            if message["role"] == "system":
                parts.append(self.system.replace("{content}", content))
            elif message["role"] == "user":
                parts.append(self.user.replace("{content}", content))
            else:
                parts.append(self.assistant_prefix + content + self.assistant_suffix)
        if add_generation_prompt:
            parts.append(self.assistant_prefix)
        return self.separator.join(parts)

    def markers(self) -> list[str]:
        """The role markers of this layout: seeing them in an answer means the template leaked."""
        found = [self.user.replace("{content}", "").strip(), self.assistant_prefix.strip(), *self.stop]
        return [m for m in dict.fromkeys(found) if m]

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "stop": list(self.stop)}

    @classmethod
    def from_record(cls, described: dict[str, Any]) -> PromptTemplate:
        """The template a run recorded in run.json (`describe()`, with CHAT_TEMPLATE and THINKING beside it),
        so that evaluation, chat and the card render prompts exactly as training did."""
        fields = {k: v for k, v in described.items() if k not in ("chat_template", "thinking")}
        return cls(**{**fields, "kind": TemplateKind(fields["kind"]), "stop": tuple(fields.get("stop", ()))})


NAMED = {
    "instruct-ko": PromptTemplate(
        "instruct-ko",
        TemplateKind.TEXT,
        system="{content}",
        user="### 질문:\n{content}",
        assistant_prefix="### 답변:\n",
        stop=("### 질문:",),
    ),
    "instruct-en": PromptTemplate(
        "instruct-en",
        TemplateKind.TEXT,
        system="{content}",
        user="### Instruction:\n{content}",
        assistant_prefix="### Response:\n",
        stop=("### Instruction:",),
    ),
    **{name: PromptTemplate(name, TemplateKind.CHAT) for name in CHAT_TEMPLATES},
}
DEFAULT = "instruct-ko"


def resolve(spec: str | None, chat_template: str | None, base_dir: Path) -> PromptTemplate:
    """PROMPT_TEMPLATE, defaulting to the CHAT_TEMPLATE AutoTrain will apply, then instruct-ko."""
    if not spec:
        spec = chat_template if chat_template in CHAT_TEMPLATES else DEFAULT
    if spec in NAMED:
        return NAMED[spec]
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.suffix != ".json":
        raise ConfigError(f"unknown template {spec!r}: use one of {', '.join(NAMED)} or a .json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"template file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"template file {path}: not UTF-8 text; save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, nesting too deep
        raise ConfigError(f"{path}: not a template ({exc})") from None
    fields = {"system", "user", "assistant_prefix", "assistant_suffix", "separator", "stop"}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a template is a JSON object, not a {type(data).__name__}")
    unknown = set(data) - fields
    if unknown or "user" not in data or "assistant_prefix" not in data:
        raise ConfigError(
            f"{path}: a template has user, assistant_prefix and optionally system, assistant_suffix, "
            f"separator, stop (found: {', '.join(sorted(data))})"
        )
    for name, value in data.items():
        texts = value if name == "stop" and isinstance(value, list) else [value]
        if not all(isinstance(text, str) for text in texts):
            kind = "a string or a list of strings" if name == "stop" else "a string"
            raise ConfigError(f"{path}: {name} must be {kind}, got {json.dumps(value)[:60]}")
    for name, value in data.items():
        found = _SHAPES.find(" ".join(value) if isinstance(value, list) else value)
        if found:
            raise ConfigError(f"{path}: {name}: holds {found[0].what}, which every sample would carry; take it out")
    if "{content}" not in data["user"]:
        raise ConfigError(f"{path}: user must contain {{content}}")
    if isinstance(data.get("stop"), str):
        data["stop"] = [data["stop"]]
    data["stop"] = tuple(data.get("stop", ()))
    return PromptTemplate(name=str(path.name), kind=TemplateKind.TEXT, **data)
