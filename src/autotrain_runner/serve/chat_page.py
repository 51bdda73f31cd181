"""The web chat page `atr serve` answers at `/` (`chat.html.j2`): one self-contained HTML file (its
style and script inline, nothing fetched from elsewhere, so it works offline) that streams answers
from the server's own `/v1/chat/completions`, keeps the conversation, starts again on `/reset`, and
shows the warnings `atr chat` prints: an answer that leaks the template, loops, or does not end."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


@cache
def _template():
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.from_string((Path(__file__).parent / "chat.html.j2").read_text(encoding="utf-8"))


# JSON inside a <script>: no "<" at all, so that neither "</script>" nor "<!--" (which with a
# "<script" after it keeps the element open past its end) can appear; "&" and ">" too, as Django's
# json_script escapes them, and the line separators older engines end a string at.
_SCRIPT_SAFE = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def chat_page(model: str, max_new_tokens: int) -> str:
    import markupsafe

    literal = markupsafe.Markup(json.dumps(model, ensure_ascii=False).translate(_SCRIPT_SAFE))
    return _template().render(title=f"Chat with {model}", model_json=literal, max_new_tokens=int(max_new_tokens))
