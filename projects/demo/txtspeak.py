"""Writes style.tsv from plain.txt: each plain message beside its 2000s "txt speak" rewrite.

The rewrite follows fixed rules, so that what the fine-tune should learn is exact and checkable:
lower case; the words below shortened as people texted in the 2000s; the final punctuation
replaced by a mood marker ("!" -> "!! ^^", "?" -> "??", "." -> " ~*").
Run it again after editing plain.txt: python projects/demo/txtspeak.py
"""

import re
from pathlib import Path

SHORT = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "are": "r",
    "to": "2",
    "too": "2",
    "for": "4",
    "today": "2day",
    "tonight": "2nite",
    "tomorrow": "2moro",
    "great": "gr8",
    "later": "l8r",
    "please": "plz",
    "thanks": "thx",
    "love": "luv",
    "really": "rly",
    "because": "cuz",
    "see": "c",
    "what": "wat",
    "before": "b4",
    "be": "b",
    "and": "n",
    "okay": "ok",
    "people": "ppl",
    "i'm": "im",
    "can't": "cant",
    "don't": "dont",
    "won't": "wont",
    "it's": "its",
    "that's": "thats",
    "let's": "lets",
}
ENDINGS = {"!": "!! ^^", "?": "??", ".": " ~*"}
WORD = re.compile(r"[a-z']+")


def txtspeak(message: str) -> str:
    text = message.strip().lower()
    ending = ENDINGS.get(text[-1:], "")
    text = text.rstrip("!?.")
    text = WORD.sub(lambda m: SHORT.get(m.group(), m.group()), text)
    return text + ending


def main() -> None:
    here = Path(__file__).parent
    lines = [line.strip() for line in (here / "plain.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [f"{line}\t{txtspeak(line)}\n" for line in lines]
    (here / "style.tsv").write_text("".join(rows), encoding="utf-8")
    print(f"wrote {len(rows)} pairs to {here / 'style.tsv'}")


if __name__ == "__main__":
    main()
