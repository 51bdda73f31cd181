"""How an answer ends: at EOS, at the template's next-turn marker, and never inside a character."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotrain_runner.config import templates
from autotrain_runner.generation.generate import REPLACEMENT, HFBackend, Settings
from autotrain_runner.rendering import chat_stop_strings

KOREAN = "오늘 하늘이 넘넘 맑아여~* 기분 좋은 하루 보내세여 ^^ 떡볶이 먹으러 갈래여?"


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(str(tiny_model))


def test_an_answer_cut_at_max_new_tokens_never_ends_in_half_a_character(backend):
    """Byte-level tokens spell a Korean syllable over several tokens: every cut of the answer's
    ids that falls inside one decodes, raw, to U+FFFD; the backend drops that partial character."""
    ids = backend.tokenizer(KOREAN, add_special_tokens=False)["input_ids"]
    raw_cuts = [n for n in range(1, len(ids)) if backend.tokenizer.decode(ids[:n]).endswith(REPLACEMENT)]
    assert raw_cuts, "the tiny tokenizer splits some syllable over tokens (else this test shows nothing)"
    for n in range(1, len(ids) + 1):
        answer = backend._decode(ids[:n], Settings(), ())
        assert REPLACEMENT not in answer.text and not answer.finished
        assert KOREAN.startswith(answer.text)
        assert n not in raw_cuts or len(answer.text) < len(backend.tokenizer.decode(ids[:n]).strip())


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="가나다라마바사아자차카타파하 ~*^.?!abc", min_size=1, max_size=30), st.data())
def test_any_cut_of_any_text_decodes_without_u_fffd(backend, text, data):
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    n = data.draw(st.integers(min_value=0, max_value=len(ids)))
    assert REPLACEMENT not in backend._decode(ids[:n], Settings(), ()).text


def test_finished_means_the_model_ended_the_answer(backend):
    """EOS or a stop marker ends an answer (`finished`); running out of tokens does not."""
    tokenizer = backend.tokenizer
    ids = tokenizer("맑아여 좋아여", add_special_tokens=False)["input_ids"]
    assert backend._decode([*ids, tokenizer.eos_token_id, *ids], Settings(), ()).finished
    assert backend._decode([*ids, tokenizer.eos_token_id, *ids], Settings(), ()).text == "맑아여 좋아여"
    marker = tokenizer("\n<|user|>\n다음", add_special_tokens=False)["input_ids"]
    stopped = backend._decode([*ids, *marker], Settings(), ("<|user|>",))
    assert stopped.finished and stopped.text == "맑아여 좋아여"
    assert not backend._decode(ids, Settings(), ("<|user|>",)).finished


def test_a_chat_template_stops_at_its_next_turn_marker(backend):
    """The tiny model's template writes `</s>\\n<|user|>\\n` between an answer and the next turn:
    EOS stops by id, `<|user|>` by string; a text layout keeps its own markers."""
    assert chat_stop_strings(backend.tokenizer) == ("<|user|>",)
    backend.attach(templates.NAMED["tokenizer"])
    assert backend.stop_strings() == ("<|user|>",)
    backend.attach(templates.NAMED["instruct-ko"])
    assert backend.stop_strings() == ("### 질문:",)
    assert backend.eos_ids == [backend.tokenizer.eos_token_id]


def test_stop_strings_are_prepared_once_per_backend_not_once_per_batch(backend, monkeypatch):
    """transformers rebuilds `StopStringCriteria` (a scan of the whole vocabulary) on every `generate`
    given `stop_strings`; with a 128k vocabulary that was 7 s a batch. The backend builds it once."""
    from transformers import StopStringCriteria

    built = []
    original = StopStringCriteria.__init__

    def counting(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(StopStringCriteria, "__init__", counting)
    backend.__dict__.pop("_stop_criteria_cache", None)
    settings = Settings(max_new_tokens=4)
    for _ in range(3):
        backend._generate_batch(["안녕하세여", "오늘 어때?"], settings, ("<|user|>",))
    backend._generate_batch(["안녕하세여"], settings, ("### 질문:",))
    backend._generate_batch(["안녕하세여"], settings, ())
    assert len(built) == 2  # one per distinct set of stop strings


def test_a_vllm_server_that_accepts_and_never_answers_is_an_error_not_a_wait_for_ever(monkeypatch, tmp_path):
    import socket
    import threading
    from types import SimpleNamespace

    from autotrain_runner.errors import WorkError
    from autotrain_runner.generation import vllm_server

    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setenv("ATR_VLLM_READ_TIMEOUT", "1")
    backend = object.__new__(vllm_server.VLLMBackend)
    backend.server = SimpleNamespace(url=f"http://127.0.0.1:{listener.getsockname()[1]}", log_path=tmp_path / "v.log")
    with backend._client() as client, pytest.raises(WorkError) as raised:
        backend._complete(client, model="m", prompt=[[1, 2]], max_tokens=1)
    assert "vLLM sent nothing for 1 s (ATR_VLLM_READ_TIMEOUT): it hangs; log " in str(raised.value)
    assert accepted  # it connected, then gave up
    listener.close()


def _answering(replies: list[tuple[int, dict[str, str]]]):
    """A real HTTP server on 127.0.0.1 that answers each POST with the next (status, headers) of
    `replies` (an OpenAI chat completion once they run out), and the times the requests came."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrivals: list[float] = []

    class Replier(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.monotonic())
            if len(arrivals) <= len(replies):
                status, headers = replies[len(arrivals) - 1]
                body = b'{"error": {"message": "busy"}}'
            else:
                answer = {"choices": [{"message": {"content": " 안녕 "}, "finish_reason": "stop"}], "usage": {}}
                body, status, headers = json.dumps(answer).encode(), 200, {}
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replier)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def _ask(server) -> list:
    from autotrain_runner.generation.openai_backend import OpenAIBackend

    backend = OpenAIBackend(f"http://127.0.0.1:{server.server_port}/v1", "m", None, concurrency=1, timeout=10)
    return backend.generate_messages([[{"role": "user", "content": "hi"}]], Settings(max_new_tokens=4))


def test_an_openai_server_that_says_retry_after_is_asked_again_after_that_long():
    server, arrivals = _answering([(429, {"Retry-After": "2"})])
    try:
        (generated,) = _ask(server)
    finally:
        server.shutdown()
    assert generated.text == "안녕" and generated.finished and len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.9  # the server's Retry-After, not the SDK's backoff (under 1 s)


def test_an_openai_server_that_fails_is_asked_again_after_a_backoff_and_a_refusal_is_not():
    from autotrain_runner.errors import WorkError

    server, arrivals = _answering([(503, {}), (503, {})])
    try:
        (generated,) = _ask(server)
    finally:
        server.shutdown()
    assert generated.text == "안녕" and len(arrivals) == 3  # two failures, then the answer
    assert 0.3 <= arrivals[1] - arrivals[0] < 2 and arrivals[2] - arrivals[1] >= 0.6  # backing off
    server, arrivals = _answering([(400, {})])
    try:
        with pytest.raises(WorkError, match=r"answered HTTP 400: .*busy") as refused:
            _ask(server)
    finally:
        server.shutdown()
    assert len(arrivals) == 1 and "tries" not in str(refused.value)  # a 4xx will not get better by asking again


def test_long_generation_says_how_far_it_is_every_so_often():
    from autotrain_runner.progress import Meter

    now = [0.0]
    said: list[str] = []
    meter = Meter(512, "run r1", "samples", said.append, every_s=15, clock=lambda: now[0])
    for _ in range(8):  # a batch of 64 every 10 s
        now[0] += 10
        meter(64)
    assert said == [
        "run r1: 128/512 samples, 6.4 samples/s, about 60 s left",
        "run r1: 256/512 samples, 6.4 samples/s, about 40 s left",
        "run r1: 384/512 samples, 6.4 samples/s, about 20 s left",
    ]
    quick: list[str] = []
    Meter(4, "base", "samples", quick.append)(4)
    assert quick == []  # work that ends within a line's interval says nothing
    tokens: list[str] = []
    counted = Meter(100, "base", "samples", tokens.append, every_s=5, clock=lambda: now[0])
    now[0] += 10
    counted(20, 640)  # the backends say the tokens each batch made
    assert tokens == ["base: 20/100 samples, 2 samples/s, 64 tokens/s, about 40 s left"]


def test_on_a_terminal_the_cli_draws_a_bar_and_a_spinner_instead_of_the_lines(monkeypatch):
    import io
    import time

    from rich.console import Console

    from autotrain_runner import progress
    from autotrain_runner.cli.printing import lines

    monkeypatch.delenv("CI", raising=False)
    screen = io.StringIO()
    echo = lines(Console(file=screen, force_terminal=True, width=120))
    with progress.meter(512, "run r1", "samples", echo) as meter:
        meter(128, 4096)
        echo("a line printed meanwhile")
        meter.progress.refresh()
    drawn = screen.getvalue()
    assert "run r1" in drawn and "128/512" in drawn and "tokens/s" in drawn and "a line printed meanwhile" in drawn
    assert "\x1b[" in drawn  # drawn with the terminal's control codes, not printed as lines

    plain: list[str] = []
    assert isinstance(progress.meter(1, "x", "samples", plain.append), progress.Meter)  # no console: lines
    piped = lines(Console(file=io.StringIO(), force_terminal=False))
    assert isinstance(progress.meter(1, "x", "samples", piped), progress.Meter)  # a pipe or a file: lines
    monkeypatch.setenv("CI", "true")
    assert isinstance(
        progress.meter(1, "x", "samples", lines(Console(file=io.StringIO(), force_terminal=True))), progress.Meter
    )

    said: list[str] = []
    state = {"n": 0}
    with progress.waiting("vLLM starting", said.append, detail=lambda: f"its log says: step {state['n']}", every_s=0.2):
        for state["n"] in range(1, 6):
            time.sleep(0.1)
    assert said and all(line.startswith("vLLM starting: ") and " so far; its log says: step " in line for line in said)
    quick: list[str] = []
    with progress.waiting("converting", quick.append, every_s=5):
        pass
    assert quick == []  # work shorter than a line's interval says nothing


def test_every_adapter_has_a_name_of_its_own_on_the_vllm_server(tmp_path):
    from autotrain_runner.generation.engine import served_names

    runs = tmp_path / "runs"
    final_a, final_b = runs / "sweep-e2-lr1" / "style", runs / "sweep-e2-lr2" / "style"
    kept_a, kept_b = final_a / "epoch-1", final_b / "epoch-1"
    names = served_names([final_a, kept_a, final_b, kept_b, kept_a])
    assert names == {
        final_a: "sweep-e2-lr1",
        kept_a: "sweep-e2-lr1-epoch-1",
        final_b: "sweep-e2-lr2",
        kept_b: "sweep-e2-lr2-epoch-1",
    }
    # two folders that clean to one name still get two
    odd = served_names([runs / "a b" / "style", runs / "a_b" / "style", runs / "a-b" / "style"])
    assert sorted(odd.values()) == ["a-b", "a-b-2", "a_b"]
