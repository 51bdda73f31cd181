"""The request bodies `atr serve` accepts: OpenAI's chat and completion requests as pydantic models.

What the server does not implement (`n` over 1, `logprobs`, `tools`, ...) is refused by name, and so is
any field OpenAI does not define ("Unrecognized request argument supplied"), as OpenAI refuses them:
400 with the `param` at fault, never a silent default. The ranges are OpenAI's: `temperature` in
0..2, `top_p` in (0, 1], `max_tokens` from 1 to `MAX_TOKENS` (more is refused, not clamped: a
client that asks for more is told), `stop` a string or up to 4.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from autotrain_runner.serve.model import MAX_TOKENS, BadRequest, Request

MAX_STOPS = 4
Tokens = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS)]

# Parameters the server does not implement, and the values that ask for nothing (OpenAI's defaults):
# absent, null or one of these is accepted; anything else is 400 `unsupported_parameter`.
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "best_of": (1,),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "echo": (False,),
    "suffix": (),
    "logit_bias": ({},),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "seed": (),
    "tools": ([],),
    "tool_choice": ("none",),
    "parallel_tool_calls": (),
    "functions": ([],),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "reasoning_effort": (),
}

MESSAGES = {
    "messages": "messages must be a non-empty list of {role: system|user|assistant, content: string}",
    "prompt": "prompt must be a non-empty string",
    "stream": "stream must be true or false",
    "max_tokens": f"max_tokens must be an integer in 1..{MAX_TOKENS}",
    "max_completion_tokens": f"max_completion_tokens must be an integer in 1..{MAX_TOKENS}",
    "temperature": "temperature must be a number in 0..2",
    "top_p": "top_p must be a number in (0, 1]",
    "stop": f"stop must be a non-empty string or a list of up to {MAX_STOPS} of them",
}


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `name` and the like: the template has no place for them

    role: Literal["system", "user", "assistant"]
    content: StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: StrictStr | None = None
    stream: StrictBool = False
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    temperature: Annotated[StrictFloat, Field(ge=0, le=2)] | None = None
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    stop: (
        Annotated[StrictStr, Field(min_length=1)]
        | Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(max_length=MAX_STOPS)]
        | None
    ) = None
    user: StrictStr | None = None
    stream_options: dict[str, Any] | None = None  # include_usage: the last chunk always carries `usage`


class ChatBody(_Body):
    messages: Annotated[list[Message], Field(min_length=1)]


class CompletionBody(_Body):
    prompt: Annotated[StrictStr, Field(min_length=1)]


def parse(body: bytes, chat: bool) -> Request:
    """The body of a POST to /v1/chat/completions (`chat`) or /v1/completions, checked as OpenAI checks it."""
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, an integer of 5,000 digits
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(fields, dict):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    try:
        json.dumps(fields, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body holds a lone surrogate (\\ud800-\\udfff)") from None
    except RecursionError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON (nested too deep)") from None
    for name, allowed in UNSUPPORTED.items():
        value = fields.pop(name, None)
        if value is not None and not any(json.dumps(value) == json.dumps(a) for a in allowed):
            raise BadRequest(
                HTTPStatus.BAD_REQUEST,
                f"{name}={json.dumps(value)[:80]} is not supported by this server",
                "unsupported_parameter",
                name,
            )
    try:
        parsed = (ChatBody if chat else CompletionBody).model_validate(fields)
    except ValidationError as exc:
        raise _refusal(exc) from None
    stop = (parsed.stop,) if isinstance(parsed.stop, str) else tuple(parsed.stop or ())
    return Request(
        messages=[m.model_dump() for m in parsed.messages] if isinstance(parsed, ChatBody) else None,
        prompt=parsed.prompt if isinstance(parsed, CompletionBody) else None,
        max_tokens=parsed.max_tokens if parsed.max_tokens is not None else parsed.max_completion_tokens,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        stop=stop,
        stream=parsed.stream,
        model=parsed.model,
    )


def _refusal(exc: ValidationError) -> BadRequest:
    """The first problem pydantic found, as OpenAI words it: the field at fault as `param`."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else None
    if error["type"] == "extra_forbidden":
        return BadRequest(
            HTTPStatus.BAD_REQUEST, f"Unrecognized request argument supplied: {name}", "unknown_parameter", name
        )
    message = MESSAGES.get(name or "", f"{name}: {error['msg']}")
    return BadRequest(HTTPStatus.BAD_REQUEST, message, "invalid_value", name)
