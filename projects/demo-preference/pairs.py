"""Writes pairs.jsonl from the demo's messages (../demo/plain.txt): each plain message as the prompt,
its txt-speak rewrite (../demo/txtspeak.py's exact rules) as the chosen answer, and as the rejected
one what an instruct model answers instead of rewriting: the message copied back unchanged, or the
same wrapped in a polite preamble. Every other pair gets each, so both failures are taught away.
Run it again after editing ../demo/plain.txt: python projects/demo-preference/pairs.py
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "demo"))
from txtspeak import txtspeak  # noqa: E402 - the demo's own rules


def rejected(message: str, index: int) -> str:
    if index % 2 == 0:
        return message
    return f"Certainly! Here is your message rewritten in a casual texting style: {message}"


def main() -> None:
    plain = HERE.parent / "demo" / "plain.txt"
    lines = [line.strip() for line in plain.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [
        json.dumps({"prompt": line, "chosen": txtspeak(line), "rejected": rejected(line, i)}, ensure_ascii=False)
        for i, line in enumerate(lines)
    ]
    (HERE / "pairs.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} pairs to {HERE / 'pairs.jsonl'}")


if __name__ == "__main__":
    main()
