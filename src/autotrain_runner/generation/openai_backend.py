"""Any OpenAI-compatible server (vLLM with --enable-lora, `atr serve`) as a backend, through the
openai SDK: the server renders the chat template; requests run concurrently, each with a timeout,
retried by the SDK (a refused or failed request: the server's Retry-After where it sends one, else
a jittered backoff; never a 4xx but 408, 409 and 429)."""

from __future__ import annotations

from collections.abc import Sequence

from autotrain_runner.errors import WorkError
from autotrain_runner.generation.generate import Generated, Settings
from autotrain_runner.redact import hide_credentials


class OpenAIBackend:
    """Any OpenAI-compatible server (vLLM with --enable-lora, `atr serve`): the server renders the
    chat template; requests run concurrently, with timeouts and retries with backoff."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        concurrency: int = 4,
        timeout: float = 120.0,
        retries: int = 3,
    ):
        self.base_url = base_url.rstrip("/")
        self.shown_url = hide_credentials(self.base_url + "/chat/completions")  # never a URL's password
        self.model = model
        self.api_key = api_key
        self.concurrency, self.timeout, self.retries = concurrency, timeout, retries
        self.description = {
            "backend": "openai",
            "base_url": hide_credentials(base_url),
            "model": model,
            "adapter": None,
            "concurrency": concurrency,
        }

    def generate_messages(
        self, conversations: Sequence[list[dict[str, str]]], settings: Settings, progress=None
    ) -> list[Generated]:
        from concurrent.futures import ThreadPoolExecutor

        from openai import OpenAI

        # the SDK needs a key; a server that asks for none ignores the one it is sent
        key = self.api_key or "unused"
        with (
            OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=self.retries - 1) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            return list(pool.map(lambda c: self._counted(client, c, settings, progress), conversations))

    def _counted(self, client, messages: list[dict[str, str]], settings: Settings, progress) -> Generated:
        generated = self._one(client, messages, settings)
        if progress:
            progress(1, generated.new_tokens)
        return generated

    def _one(self, client, messages: list[dict[str, str]], settings: Settings) -> Generated:
        import openai

        tries = f" (after {self.retries} tries)"
        try:
            answer = client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
            )
        except openai.APITimeoutError:
            late = f"{self.shown_url} did not answer within {self.timeout:g} s (EVAL_TIMEOUT)"
            raise WorkError(late + tries) from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__ or exc).__name__
            raise WorkError(f"cannot reach {self.shown_url}: {cause}; is the server running?{tries}") from None
        except openai.APIStatusError as exc:
            retried = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            problem = f"{self.shown_url} answered HTTP {exc.status_code}: {exc.response.text[:200]}"
            raise WorkError(problem + (tries if retried else "")) from None
        try:
            choice = answer.choices[0]
            text, finish = choice.message.content, choice.finish_reason
        except (AttributeError, IndexError, TypeError):
            # the SDK hands a body that is not JSON back as its text
            shown = answer if isinstance(answer, str) else answer.to_json(indent=None)
            raise WorkError(
                f"{self.shown_url} answered something that is not an OpenAI chat completion: {shown[:120]!r}"
            ) from None
        tokens = getattr(answer.usage, "completion_tokens", 0) if answer.usage else 0  # a server may count none
        return Generated((text or "").strip(), finish == "stop", int(tokens or 0))
