"""What a command generates with: a run's adapter and recorded template, or the base model with
the project's template (a `Target`), the project's generation keys, and how a target's prompts
are rendered and checked for leaks.

`atr eval`, `atr sweep`, `atr chat` and `atr serve` all read a project this one way.
"""

from __future__ import annotations

from pathlib import Path

from autotrain_runner import gguf, layout
from autotrain_runner.config import models, templates
from autotrain_runner.config.records import Config
from autotrain_runner.generation.generate import Settings
from autotrain_runner.generation.target import Target
from autotrain_runner.layout import checkpoints
from autotrain_runner.rendering import DEFAULT_THINKING, THINKING_MODES


def run_target(config: Config, run_id: str | None, out: Path | None, epoch: int | None = None) -> Target:
    """A run's adapter (or merged model); with `epoch`, the adapter it kept at that epoch (KEEP_EPOCHS)."""
    run_dir, record = layout.succeeded_run(config.project_dir, run_id, "evaluate", "train first, or use --base")
    run_id = run_dir.name
    output = run_dir / record.output_dir
    label = f"run {run_id}"
    if epoch is not None:
        kept = checkpoints.kept_adapter(run_id, output, epoch, record.params.get("epochs"))
        output, label = kept, f"run {run_id}, epoch {epoch} of {record.params.get('epochs')}"
        out = out or layout.run_eval_dir(run_dir) / kept.name
    template = templates.PromptTemplate.from_record(record.template)
    params = record.params
    merged = (output / "config.json").is_file() and not (output / "adapter_config.json").is_file()
    model = str(output) if merged else record.model["path"]
    return Target(
        label,
        model,
        None if merged else output,
        template,
        out or layout.run_eval_dir(run_dir),
        load_in_4bit=params.get("quantization") == "int4",
        thinking=_recorded_thinking(record),
        trainer=params.get("trainer") or "sft",
    )


def base_target(config: Config, out: Path | None) -> Target:
    gguf.ensure_converted(config.model)
    return Target(
        f"base {config.model.spec}",
        models.training_path(config.model),
        None,
        config.template,
        out or layout.base_eval_dir(config.project_dir, config.model.spec),
        # a QLoRA project's runs are evaluated in 4 bits: its base model is compared the same way
        load_in_4bit=config.quantization == "int4",
        thinking=config.get("THINKING") or DEFAULT_THINKING,
    )


def _recorded_thinking(record) -> str:
    """THINKING as the run trained with it; a run from before the key rendered with the template's default."""
    value = record.template.get("thinking")
    return value if value in THINKING_MODES else "template"


def generation_settings(config: Config, batch_size: int | None = None) -> Settings:
    """The generation keys of a project (eval, chat and serve read them the same way)."""
    return Settings(
        max_new_tokens=config.get("MAX_NEW_TOKENS"),
        temperature=config.get("TEMPERATURE"),
        top_p=config.get("TOP_P"),
        repetition_penalty=config.get("REPETITION_PENALTY"),
        batch_size=batch_size or config.get("EVAL_BATCH_SIZE"),
    )


def prompts_path(config: Config) -> Path | None:
    """EVAL_PROMPTS, relative to the file that set it."""
    if not config.get("EVAL_PROMPTS"):
        return None
    source = config.values["EVAL_PROMPTS"].source
    return (source.path.parent if source.path else Path.cwd()) / str(config.get("EVAL_PROMPTS"))


def render_prompt(backend, messages: list[dict[str, str]]) -> str:
    """The prompt, as the backend's renderer (the target's template, `Engine.backend`) renders it."""
    return backend.renderer.prompt_text(messages)


def leak_markers(backend, template: templates.PromptTemplate) -> list[str]:
    """What must never appear in an answer: the layout's role markers and the special tokens."""
    found = template.markers() if not template.is_chat else []
    found += [t for t in backend.tokenizer.all_special_tokens if t not in (backend.tokenizer.pad_token,)]
    if template.is_chat:
        found += ["<|im_start|>", "<|user|>", "<|assistant|>", "<|system|>"]
    return list(dict.fromkeys(m for m in found if m))


def openai_markers(template: templates.PromptTemplate) -> list[str]:
    """Leak markers when the server renders the template: the project's, and the common chat ones."""
    return [*template.markers(), "<|im_start|>", "<|im_end|>", "<|user|>", "<|assistant|>", "</s>", "<|eot_id|>"]


def context_overflow(window: int, prompt_tokens: int, max_tokens: int) -> str | None:
    """Why a prompt of `prompt_tokens` cannot be answered with `max_tokens` more in a context of
    `window`, in OpenAI's words (`atr serve` answers 400 `context_length_exceeded` with it, `atr
    chat` prints it); None when it fits. Checked before generating: a prompt past the context
    would otherwise run for minutes to produce nothing useful."""
    if prompt_tokens + max_tokens <= window:
        return None
    return (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
        "completion). Please reduce the length of the messages or completion."
    )
