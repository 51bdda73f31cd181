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


def chat_page(model: str, max_new_tokens: int) -> str:
    # JSON inside a <script>: no "</" may close the element early (markupsafe leaves it as it is)
    import markupsafe

    literal = markupsafe.Markup(json.dumps(model, ensure_ascii=False).replace("</", "<\\/"))
    return _template().render(title=f"Chat with {model}", model_json=literal, max_new_tokens=int(max_new_tokens))
