"""Any OpenAI-compatible server (vLLM with --enable-lora, `atr serve`) as a backend: the server
renders the chat template; requests run concurrently, each with a timeout, retried with backoff
(the server's Retry-After where it sends one, else jittered doubling)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from autotrain_runner.generation.generate import Generated, Settings
from autotrain_runner.redact import hide_credentials

RETRY_AFTER_CAP_S = 60.0  # a server asking for longer is waited for this long, then asked again


def retry_wait(delay: float, response: Any = None) -> float:
    """How long to wait before asking again: what the server's Retry-After says (seconds or an HTTP
    date, at most RETRY_AFTER_CAP_S), else the backoff delay with jitter (0.5x-1.5x), so that
    concurrent requests refused together do not come back together."""
    import random
    from email.utils import parsedate_to_datetime

    asked = response.headers.get("Retry-After") if response is not None else None
    if asked:
        try:
            seconds = float(asked)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(asked) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)
    return delay * random.uniform(0.5, 1.5)


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
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.shown_url = hide_credentials(self.url)  # what messages and records say: never a URL's password
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
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

        import httpx

        with (
            httpx.Client(timeout=self.timeout, headers=self.headers) as client,
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            return list(pool.map(lambda c: self._counted(client, c, settings, progress), conversations))

    def _counted(self, client, messages: list[dict[str, str]], settings: Settings, progress) -> Generated:
        generated = self._one(client, messages, settings)
        if progress:
            progress(1)
        return generated

    def _one(self, client, messages: list[dict[str, str]], settings: Settings) -> Generated:
        import httpx

        from autotrain_runner.errors import WorkError

        payload = {
            "model": self.model,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        delay = 0.5
        for attempt in range(1, self.retries + 1):
            response = None
            try:
                response = client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                problem = f"cannot reach {self.shown_url}: {type(exc).__name__}; is the server running?"
            else:
                if response.status_code == 200:
                    return self._parse(response)
                problem = f"{self.shown_url} answered HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise WorkError(problem)  # a 4xx will not get better by retrying
            if attempt < self.retries:
                time.sleep(retry_wait(delay, response))
                delay *= 2
        raise WorkError(f"{problem} (after {self.retries} tries)")

    def _parse(self, response) -> Generated:
        from autotrain_runner.errors import WorkError

        try:
            choice = response.json()["choices"][0]
            text = choice["message"]["content"]
            finish = choice.get("finish_reason")
            tokens = (response.json().get("usage") or {}).get("completion_tokens", 0)
        except (ValueError, KeyError, IndexError, TypeError):
            raise WorkError(
                f"{self.shown_url} answered something that is not an OpenAI chat completion: {response.text[:120]!r}"
            ) from None
        return Generated((text or "").strip(), finish == "stop", int(tokens or 0))
