"""`atr push` on a real tiny-model run, up to the network boundary: the plan, the card, the
secret scan, the token's source and warnings, merged weights. The upload itself needs the Hub."""

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from autotrain_runner.config.load import load_config
from autotrain_runner.errors import ConfigError
from autotrain_runner.hub.files import stale
from autotrain_runner.hub.push import push
from autotrain_runner.hub.repo import resolve_repo, token_warnings
from autotrain_runner.hub.scan import Hit, scan_text
from helpers import CANARY, STYLE_ENV, atr, write

ENV = STYLE_ENV + "USERNAME=me\nMAX_NEW_TOKENS=8\nEVAL_BATCH_SIZE=4\n"


@pytest.fixture
def project(trained_copy, tiny_model, tmp_path, monkeypatch) -> Path:
    """A copy of the shared trained project (conftest), free to change; no `huggingface-cli login` token."""
    # the tests below name lines of this env file (USERNAME on line 14)
    assert (trained_copy / "project.env").read_text(encoding="utf-8") == ENV.format(model=tiny_model)
    login = tmp_path / "hf-home" / "token"
    monkeypatch.setenv("HF_TOKEN_PATH", str(login))  # for `atr` in a child process
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(login))  # read at import, in this one
    return trained_copy


def section(out: str, start: str, end: str) -> list[str]:
    lines = out.split(f"\n{start}\n", 1)[1].split(f"\n{end}", 1)[0].splitlines()
    return [line.split()[0] for line in lines]


def test_dry_run_plan_and_card_without_network_or_token(project, tiny_model):
    result = atr("push", str(project), "--dry-run")
    assert result.code == 0, result.text[-3000:]
    out = result.out
    assert "repo:   me/style (from USERNAME (" in out and "project.env:14) + the project name)" in out
    assert "run:    r1: LoRA adapter" in out, "the latest succeeded run"
    assert "token:  none found" in out
    uploaded = section(out, "upload:", "not uploaded:")
    assert uploaded == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    excluded = section(out, "not uploaded:", "secret scan:")
    assert set(excluded) >= {
        "data/",
        "run.json",
        "train.log",
        "style/README.md",
        "style/autotrain-data/",
        "style/training_args.bin",
        "style/training_params.json",
    }
    assert "secret scan: 6 files (card included), nothing found" in out
    card = out.split("The model card (", 1)[1]
    assert "library_name: peft" in card and "- ko" in card
    assert "base_model:" not in card, "a local base model is no Hub id"
    assert "`txt` builder from `style.txt`" in card and "Splits (seed 42): train 28, valid 6, test 6." in card
    assert (
        "| lora_r | 4 | config |" in card
        and "| lr | 0.001 | config |" in card
        and "| block_size | 64 | config |" in card
    )
    assert "| epochs | 1 | AutoTrain default |" in card and "| scheduler | linear | AutoTrain default |" in card
    assert "Loss on: answer (prompt and role markers masked up to the template's answer marker;" in card
    assert "Weights: fp32 base, LoRA fp32, autocast none." in card  # the dtypes it trained in
    assert f"A LoRA adapter for `{tiny_model.name}`" in card and str(tiny_model) not in card, "no local paths"
    assert "### 질문:\n{question}\n\n### 답변:\n" in card, "the layout it was trained with"
    assert "Cut the answer at `### 질문:`" in card
    assert "No evaluation was recorded for this run" in card
    assert 'PeftModel.from_pretrained(model, "me/style")' in card
    assert "adapter_config.json" in out and f"base_model_name_or_path: {tiny_model.name} (was a local path)" in out
    assert not list((project / "runs" / "r1").glob("merged-*")), "a dry run of an adapter writes nothing"
    plan = push(project, dry_run=True, echo=lambda _: None, warn=lambda _: None)
    published = {f.name: f.source for f in plan.files}["adapter_config.json"]
    original = (project / "runs/r1/style/adapter_config.json").read_bytes()
    assert isinstance(published, bytes) and str(tiny_model).encode() not in published
    assert published.count(b"\n") == original.count(b"\n"), "line numbers of the scan are the file's"
    assert json.loads(published) == {**json.loads(original), "base_model_name_or_path": tiny_model.name}

    assert atr("eval", str(project), "--run", "r1", "--limit", "3").code == 0
    again = atr("push", str(project), "--dry-run")
    assert again.code == 0, again.text[-3000:]
    assert "eval/" in section(again.out, "not uploaded:", "secret scan:")
    card = again.out.split("The model card (", 1)[1]
    figures = json.loads((project / "runs/r1/eval/metrics.json").read_text())
    assert f"| chrf | {figures['chrf']} | 0-100 (sacrebleu) |" in card
    assert "| n | 3 | samples |" in card
    assert f"- bleu: `{figures['signatures']['bleu']}`" in card
    assert '"decoding": "greedy"' in card and '"adapter": "this run"' in card
    assert str(project) not in card and str(tiny_model) not in card, "no local paths in a published card"


def test_repo_id_precedence(project):
    env_file = project / "project.env"
    chosen = resolve_repo(load_config(project), None)
    assert chosen.value == "me/style" and chosen.source.startswith("USERNAME (")

    with env_file.open("a", encoding="utf-8") as handle:
        handle.write("REPO_ID=legacy/old-name\n")
    chosen = resolve_repo(load_config(project), None)
    assert chosen.value == "legacy/old-name" and chosen.source.startswith("REPO_ID (the old name of HUB_REPO), ")

    write(project / "project.local.env", "HUB_REPO=team/current\n")
    chosen = resolve_repo(load_config(project), None)
    assert chosen.value == "team/current" and chosen.source.endswith("project.local.env:1")

    chosen = resolve_repo(load_config(project), "cli/given")
    assert (chosen.value, chosen.source) == ("cli/given", "--repo")

    with pytest.raises(ConfigError, match=r"^--repo: 'no-owner' is not a Hub repo id"):
        resolve_repo(load_config(project), "no-owner")
    write(project / "project.local.env", "HUB_REPO=team/bad--name\n")
    with pytest.raises(ConfigError, match=r"project.local.env:1: HUB_REPO: 'team/bad--name' is not a Hub repo id"):
        resolve_repo(load_config(project), None)

    write(project / "project.local.env", "HUB_REPO=team/current\n")
    shown = atr("push", str(project), "--dry-run")
    assert "repo:   team/current (from HUB_REPO, " in shown.out, shown.text[-2000:]
    env_file.write_text(env_file.read_text().replace("USERNAME=me\n", "").replace("REPO_ID=legacy/old-name\n", ""))
    (project / "project.local.env").unlink()
    missing = atr("push", str(project), "--dry-run")
    assert missing.code == 2 and "HUB_REPO: no repo to push to; pass --repo OWNER/NAME" in missing.err


def plant(path: Path, line: str, at: int = 1) -> int:
    """Insert a line into a JSON file the way a careless edit would; returns its line number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(at, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return at + 1


def test_secret_scan_names_file_and_line_and_never_the_secret(project):
    from safetensors.torch import load_file, save_file

    output = project / "runs" / "r1" / "style"
    secret = "not-token-shaped-but-configured-4711"
    write(project / "project.local.env", f"HF_TOKEN={secret}\n")
    adapter_line = plant(output / "adapter_config.json", f'  "note": "{CANARY}",')
    assignment_line = plant(output / "tokenizer_config.json", '  "api_key": "abcdefghijklmnop1234",', at=2)
    literal_line = plant(output / "chat_template.jinja", f"{{# {secret} #}}")
    weights = output / "adapter_model.safetensors"
    save_file(load_file(weights), weights, metadata={"note": CANARY})

    result = atr("push", str(project), "--dry-run")
    assert result.code == 1, result.text[-3000:]
    errors = result.err
    assert f"secret scan: adapter_config.json:{adapter_line}: a Hugging Face token (hf_...)" in errors
    assert "secret scan: adapter_model.safetensors (safetensors header): a Hugging Face token (hf_...)" in errors
    assert f"secret scan: tokenizer_config.json:{assignment_line}: a secret assignment" in errors
    assert f"secret scan: chat_template.jinja:{literal_line}: the value of HF_TOKEN" in errors
    assert "nothing was uploaded" in errors
    for shown in (result.out, result.err):
        assert CANARY not in shown and secret not in shown and "abcdefghijklmnop1234" not in shown
    assert "The model card" not in result.out


def test_a_token_of_25_characters_stops_the_push(project):
    """Once masked in logs but published: the push's scan had its own, longer token pattern."""
    short = "hf_shortCANARYshort12345abcd"
    line = plant(project / "runs" / "r1" / "style" / "tokenizer_config.json", f'  "note": "{short}",', at=2)
    result = atr("push", str(project), "--dry-run")
    assert result.code == 1, result.text[-3000:]
    assert f"secret scan: tokenizer_config.json:{line}: a Hugging Face token (hf_...)" in result.err
    assert "nothing was uploaded" in result.err and short not in result.text


def test_secret_scan_covers_the_generated_card(project):
    # A token in SYSTEM_PROMPT, glued to Hangul: masked when the config is read, so the card has *** there.
    masked = atr("push", str(project), "--dry-run", "--set", f"SYSTEM_PROMPT=공감하며 답하세요{CANARY}")
    assert masked.code == 0, masked.text[-3000:]
    assert "공감하며 답하세요***" in masked.out.split("The model card (", 1)[1]
    # One in a file the card is written from (the evaluation), glued to Hangul as well: the scan stops it.
    metrics = project / "runs" / "r1" / "eval" / "metrics.json"
    write(metrics, json.dumps({"n": 3, "signatures": {"bleu": f"공감하며 답하세요{CANARY}"}}, ensure_ascii=False))
    result = atr("push", str(project), "--dry-run")
    assert result.code == 1, result.text[-3000:]
    hit = next(line for line in result.err.splitlines() if "secret scan: README.md:" in line)
    assert hit.endswith("(the generated model card, section 'Evaluation'): a Hugging Face token (hf_...)")
    for shown in (masked, result):
        assert CANARY not in shown.text and CANARY[3:] not in shown.text


def test_secret_scan_reads_tokens_glued_escaped_and_in_utf16(project):
    """Each of these passed the scan before: a token after Hangul, JSON's `\\u005f` for `_`, UTF-16
    JSON (with and without a BOM), and safetensors metadata."""
    from safetensors.torch import load_file, save_file

    output = project / "runs" / "r1" / "style"
    glued = plant(output / "tokenizer_config.json", f'  "note": "토큰{CANARY}",', at=2)
    escaped = plant(output / "adapter_config.json", '  "note": "hf\\u005f' + CANARY[3:] + '",')
    utf16 = '{\n  "bos_token": "<s>",\n  "note": "x' + CANARY + '"\n}\n'
    (output / "special_tokens_map.json").write_bytes(utf16.encode("utf-16"))  # with a BOM
    (output / "chat_template.json").write_bytes(utf16.encode("utf-16-le"))  # without
    weights = output / "adapter_model.safetensors"
    save_file(load_file(weights), weights, metadata={"note": f"토큰{CANARY}"})

    result = atr("push", str(project), "--dry-run")
    assert result.code == 1, result.text[-3000:]
    hf = "a Hugging Face token (hf_...)"
    for where in (
        f"tokenizer_config.json:{glued}",
        f"adapter_config.json:{escaped}",
        "special_tokens_map.json:3",
        "chat_template.json:3",
        "adapter_model.safetensors (safetensors header)",
    ):
        assert f"secret scan: {where}: {hf}" in result.err, (where, result.err)
    assert "nothing was uploaded" in result.err
    assert CANARY not in result.text and CANARY[3:] not in result.text


def test_token_sources_and_the_shared_env_file_warning(project):
    root = project.parent.parent
    env_file = project / "project.env"
    with env_file.open("a", encoding="utf-8") as handle:
        handle.write(f"HF_TOKEN={CANARY}\n")
    line = len(env_file.read_text().splitlines())
    result = atr("push", str(project), "--dry-run")
    assert result.code == 0, result.text[-3000:]
    warning = next(w for w in result.err.splitlines() if w.startswith("warning: "))
    assert f"project.env:{line}: HF_TOKEN: the token is written in project.env, which is not a *.local.env" in warning
    assert "move that line to project.local.env beside it (git-ignored) or set HF_TOKEN in the environment" in warning
    assert "token:  HF_TOKEN (" in result.out and f"project.env:{line})" in result.out
    assert CANARY not in result.text

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "projects/style/project.env")
    assert "which git tracks" in token_warnings(load_config(project))[0]

    env_file.write_text(env_file.read_text().replace(f"HF_TOKEN={CANARY}\n", ""))
    write(project / "project.local.env", f"HF_TOKEN={CANARY}\n")
    assert "which git does not ignore (`git add` would commit it)" in token_warnings(load_config(project))[0]
    write(root / ".gitignore", "*.local.env\n")
    assert token_warnings(load_config(project)) == []
    assert "command line" in token_warnings(load_config(project, [f"HF_TOKEN={CANARY}"]))[0]

    # no HF_TOKEN anywhere: the token `huggingface-cli login` stored, which PUSH_TO_HUB=true accepts
    (project / "project.local.env").unlink()
    with pytest.raises(ConfigError, match=r"PUSH_TO_HUB=true needs a token: .* or run `huggingface-cli login`"):
        load_config(project, ["PUSH_TO_HUB=true"])
    login = Path(os.environ["HF_TOKEN_PATH"])
    write(login, CANARY + "\n")
    assert load_config(project, ["PUSH_TO_HUB=true"]).push
    cached = atr("push", str(project), "--dry-run")
    assert cached.code == 0 and f"token:  huggingface-cli login ({login})" in cached.out
    assert CANARY not in cached.text and "warning" not in cached.err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_stops_at_the_network_boundary_with_what_to_do(project):
    no_token = atr("push", str(project))
    assert no_token.code == 2
    assert "HF_TOKEN: no Hub token; put HF_TOKEN=... in project.local.env or the environment" in no_token.err
    assert "huggingface-cli login" in no_token.err

    offline = atr("push", str(project), env={"HF_TOKEN": CANARY})
    assert offline.code == 1, offline.text[-2000:]
    assert "push needs network, and HF_HUB_OFFLINE=1" in offline.err and "unset HF_HUB_OFFLINE" in offline.err
    assert CANARY not in offline.text and "Traceback" not in offline.text

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: the Hub is unreachable
    unreachable = atr("push", str(project), env={"HF_TOKEN": CANARY, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint})
    assert unreachable.code == 1, unreachable.text[-2000:]
    assert f"cannot reach {endpoint}: check the network (or HF_ENDPOINT); nothing was uploaded" in unreachable.err
    assert CANARY not in unreachable.text

    older = project / "runs" / "zz-named-run"  # sorts after r1 by name, finished before it
    shutil.copytree(project / "runs" / "r1", older)
    record = json.loads((older / "run.json").read_text())
    (older / "run.json").write_text(json.dumps({**record, "id": older.name, "ended_at": "2000-01-01T00:00:00+00:00"}))
    skipped = atr("push", str(project), "--if-enabled")
    assert skipped.code == 0 and "PUSH_TO_HUB is not true for style: nothing to push" in skipped.out
    enabled = atr(
        "push", str(project), "--if-enabled", "--dry-run", "--set", "PUSH_TO_HUB=true", env={"HF_TOKEN": CANARY}
    )
    assert enabled.code == 0, enabled.text[-2000:]
    assert "run:    r1: LoRA adapter" in enabled.out, "the run that finished last"
    assert "token:  environment (HF_TOKEN)" in enabled.out


def test_merged_weights_give_the_same_greedy_output_as_base_plus_adapter(project, tiny_model):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert atr("push", str(project), "--dtype", "fp16", "--dry-run").code == 2, "--dtype needs --merged"
    result = atr("push", str(project), "--merged", "--dtype", "fp32", "--dry-run")
    assert result.code == 0, result.text[-3000:]
    uploaded = section(result.out, "upload:", "not uploaded:")
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(uploaded)
    assert not {"adapter_config.json", "adapter_model.safetensors"} & set(uploaded)
    assert "style/adapter_model.safetensors  merged into the weights (--merged)" in result.out
    card = result.out.split("The model card (", 1)[1]
    assert "library_name: transformers" in card and "- merged" in card and "saved in fp32" in card

    run = project / "runs" / "r1"
    merged_config = (run / "merged-fp32" / "config.json").read_text()
    assert str(tiny_model) not in merged_config, "no path of this machine in the published config"
    assert json.loads(merged_config).get("_name_or_path", tiny_model.name) == tiny_model.name
    merged = AutoModelForCausalLM.from_pretrained(run / "merged-fp32").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "style")
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "style").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompts = [f"### 질문:\n{q}\n\n### 답변:\n" for q in ("오늘 어때?", "질문 3 오늘 어때?", "주말에 뭐 할까?")]
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False)
        kwargs = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
        with torch.no_grad():
            expected = tuned.generate(**ids, **kwargs)
            got = merged.generate(**ids, **kwargs)
            assert got.tolist() == expected.tolist(), prompt
            assert not torch.allclose(merged(**ids).logits, base(**ids).logits), "the adapter changed the model"

    half = atr("push", str(project), "--merged", "--dtype", "fp16", "--dry-run")
    assert half.code == 0, half.text[-3000:]
    with safe_open(str(run / "merged-fp16" / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.float16}  # noqa: SIM118
    default = atr("push", str(project), "--merged", "--dry-run")
    assert "merged weights: " in default.out and "(made by an earlier push)" in default.out, default.text[-2000:]
    assert "merged-fp32" in default.out, "the base model's own precision"


def test_scan_shapes_and_stale_files():
    secrets = {"configured-secret-value": "the value of HF_TOKEN"}
    text = "\n".join(
        [
            "fine line",
            f"token = {CANARY}",
            "HF_TOKEN=hf_xxxxxxxx",  # the placeholder of old notebooks: too short to be a token
            "masked: ***",
            "x" + CANARY,  # glued to a word, still a token
            "key: sk-proj-abcdefghijklmnopqrstuvwx",
            'password: "correct-horse-battery"',
            "AKIAABCDEFGHIJKLMNOP",
            "uses configured-secret-value here",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ]
    )
    assert scan_text("f.txt", text, secrets) == [
        Hit("f.txt:2", "a Hugging Face token (hf_...)"),
        Hit("f.txt:5", "a Hugging Face token (hf_...)"),
        Hit("f.txt:6", "an OpenAI-style key (sk-...)"),
        Hit("f.txt:7", "a secret assignment (api_key=..., password=...)"),
        Hit("f.txt:8", "an AWS access key id"),
        Hit("f.txt:9", "the value of HF_TOKEN"),
        Hit("f.txt:10", "a private key"),
    ]
    existing = [".gitattributes", "README.md", "adapter_config.json", "adapter_model.safetensors", "notes.md"]
    merged = {"README.md", "config.json", "model.safetensors", "tokenizer.json"}
    assert stale(existing, merged) == ["adapter_config.json", "adapter_model.safetensors"]
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    assert stale(shards, merged) == shards


def test_the_card_names_the_language_of_the_training_data(tmp_path):
    """From the staged data's contents (not its JSON keys): Korean, English, or both."""
    from autotrain_runner.config import templates
    from autotrain_runner.hub.card import _languages

    def staged(name: str, text: str) -> Path:
        run = tmp_path / name
        (run / "data").mkdir(parents=True)
        (run / "data" / "train.jsonl").write_text(text, encoding="utf-8")
        return run

    chat = templates.NAMED["tokenizer"]
    english = json.dumps(
        {"messages": [{"role": "user", "content": "Thanks a lot"}, {"role": "assistant", "content": "thx"}]}
    )
    korean = json.dumps(
        {"messages": [{"role": "user", "content": "오늘 날씨 어때?"}, {"role": "assistant", "content": "맑아여"}]}
    )
    assert _languages(staged("en", english + "\n"), chat) == ["en"]
    assert _languages(staged("ko", korean + "\n"), chat) == ["ko"]
    assert _languages(staged("both", f"{korean}\n{english}\n"), chat) == ["ko", "en"]
    assert _languages(tmp_path / "no-data", templates.NAMED["instruct-en"]) == ["en"]
