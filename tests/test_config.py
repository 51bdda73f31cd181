"""`atr check` and `atr command`: parsing, sources, validation, as a user runs them."""

import json
import shlex

import pytest

from autotrain_runner.config import autotrain_fields
from autotrain_runner.config.load import load_config
from autotrain_runner.errors import ConfigError
from autotrain_runner.training import autotrain_schema
from helpers import LEGACY_ENV, atr, write, write_csv

EXPECTED_FLAGS = (
    "--model LDCC/LDCC-Instruct-Llama-2-ko-13B-v1.4 --lr 0.0002 --epochs 2 --batch-size 2 --block_size 1024 "
    "--trainer sft --warmup-ratio 0.1 --weight-decay 0.01 --gradient-accumulation 4 --mixed-precision fp16 "
    "--peft --quantization int4 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 --text-column text"
)


def test_design_env_file_passes_check(legacy_project):
    result = atr("check", str(legacy_project))
    assert result.code == 0, result.text
    out = result.out
    assert "LDCC/2-202021013 (runs as LDCC-2-202021013)" in out
    assert "MODEL (as MODEL_NAME)" in out and "project.env:3" in out
    assert "LR (as LEARNING_RATE)" in out and "0.0002" in out
    assert "NUM_EPOCHS: is an old AutoTrain name; the current key is EPOCHS" in out
    assert "TEXT_COLUMM: is an old AutoTrain name; the current key is TEXT_COLUMN" in out
    assert "unverified offline" in out
    # int4 on a machine without CUDA: a note (bitsandbytes 0.50 quantizes on the CPU)
    assert "project.env:17: USE_INT4: int4 without CUDA" in out
    assert "fp16 needs CUDA; without it training runs in fp32" in out


@pytest.mark.slow
def test_design_env_file_command(legacy_project):
    result = atr("command", str(legacy_project))
    assert result.code == 0, result.text
    line = result.out.strip()
    assert EXPECTED_FLAGS in line
    assert line.startswith(
        "autotrain llm --train --project-name LDCC-2-202021013 --data-path data --train-split train "
    )
    assert "token" not in line.lower() and "hf_" not in line and "push" not in line

    as_json = json.loads(atr("command", str(legacy_project), "--json").out)
    assert as_json == shlex.split(line)


def test_argv_is_understood_by_autotrains_own_parser(legacy_project):
    """Every flag we emit parses with the real AutoTrain CLI parser, to the values we meant."""
    import argparse

    from autotrain.cli.run_llm import RunAutoTrainLLMCommand

    config = load_config(legacy_project)
    from autotrain_runner.training.command import build_argv

    parser = argparse.ArgumentParser()
    RunAutoTrainLLMCommand.register_subcommand(parser.add_subparsers())
    args = parser.parse_args(build_argv(config)[1:])
    assert (args.lr, args.epochs, args.batch_size, args.block_size) == (0.0002, 2, 2, "1024")
    assert (args.mixed_precision, args.quantization, args.peft, args.text_column) == ("fp16", "int4", True, "text")
    assert (args.project_name, args.data_path, args.train_split) == ("LDCC-2-202021013", "data", "train")
    assert args.token is None and args.push_to_hub is False


def test_schema_snapshot_matches_installed_autotrain():
    assert autotrain_schema.snapshot_live() == autotrain_fields.snapshot()


def test_every_error_is_reported_at_once_with_file_line_and_key(tmp_path):
    write_csv(tmp_path / "data.csv", ["a"], column="content")
    write(
        tmp_path / "project.env",
        """\
        MODEL=some-org/some-model
        DATA_FILE=data.csv
        NUM_EPOCH=3
        LORA_R=abc
        LR=0
        BATCH_SIZE=0
        LORA_DROPOUT=1
        WARMUP_RATIO=1.5
        TRAINER=ppo
        MIXED_PRECISION=fp8
        CHAT_TEMPLATE=llama3
        QUANTIZATION=int4
        PEFT=false
        PUSH_TO_HUB=true
        BROKEN="never closed
        """,
    )
    result = atr("check", str(tmp_path))
    assert result.code == 2
    assert "Traceback" not in result.text
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    expected = [
        ":3: NUM_EPOCH: unknown key; did you mean NUM_EPOCHS?",
        ":4: LORA_R: 'abc' is not a whole number",
        ":5: LR: must be in (0, 1], got 0",
        ":6: BATCH_SIZE: must be in [1, 65536], got 0",
        ":7: LORA_DROPOUT: must be in [0, 1), got 1",
        ":8: WARMUP_RATIO: must be in [0, 1], got 1.5",
        ":9: TRAINER: 'ppo' is not one of: default, sft, reward, dpo, orpo",
        ":10: MIXED_PRECISION: 'fp8' is not one of: fp16, bf16, none",
        ":11: CHAT_TEMPLATE: 'llama3' is not one of: none, zephyr, chatml, tokenizer",
        ":12: QUANTIZATION: int4 quantization trains LoRA adapters only",
        ":14: HF_TOKEN: PUSH_TO_HUB=true needs a token",
        ":14: USERNAME: PUSH_TO_HUB=true needs a Hub user or organisation",
        ':15: BROKEN: unterminated " quote',
        "data.csv:1: TEXT_COLUMN: column 'text' not in the header (found: content); set TEXT_COLUMN=content",
    ]
    for fragment in expected:
        assert any(fragment in line for line in errors), f"{fragment!r} not in:\n" + "\n".join(errors)
    assert all("project.env:" in line for line in errors if "data.csv" not in line)
    assert len(errors) == len(expected)


def test_missing_data_file_and_model_folder(tmp_path):
    write(tmp_path / "project.env", "MODEL=./no-such-model\nDATA_FILE=missing.csv\n")
    result = atr("check", str(tmp_path))
    assert result.code == 2
    assert "project.env:1: MODEL: model folder not found" in result.err
    assert "project.env:2: DATA_FILE: data file not found: missing.csv" in result.err


def test_precedence_and_sources(tmp_path):
    write(tmp_path / "envs/base.env", "EPOCHS=1\nLR=1e-4\nLORA_R=8\nBATCH_SIZE=1\nSEED=7\n")
    write(
        tmp_path / "p/project.env",
        "EXTENDS=../envs/base.env\nMODEL=org/m\nDATA_FILE=d.csv\nEPOCHS=2\nLR=2e-4\nLORA_R=16\nBATCH_SIZE=2\n",
    )
    write(tmp_path / "p/project.local.env", "LR=3e-4\nLORA_R=32\nBATCH_SIZE=3\n")
    write_csv(tmp_path / "p/d.csv", ["x"])
    environ = {"ATR_LORA_R": "64", "ATR_BATCH_SIZE": "4", "LORA_R": "1", "MODEL": "ignored/unprefixed"}
    config = load_config(tmp_path / "p", overrides=["BATCH_SIZE=5"], environ=environ)
    got = {key: (config.get(key), str(config.source(key))) for key in ("SEED", "EPOCHS", "LR", "LORA_R", "BATCH_SIZE")}
    assert got["SEED"][0] == 7 and got["SEED"][1].endswith("envs/base.env:5")
    assert got["EPOCHS"][0] == 2 and got["EPOCHS"][1].endswith("project.env:4")
    assert got["LR"][0] == 3e-4 and got["LR"][1].endswith("project.local.env:1")
    assert got["LORA_R"] == (64, "environment (ATR_LORA_R)")
    assert config.get("MODEL") == "org/m", "an unprefixed MODEL in the shell is not a setting"
    assert got["BATCH_SIZE"] == (5, "--set")
    assert str(config.source("LORA_ALPHA")) == "default"


def test_environment_fills_bash_defaults(legacy_project):
    result = atr("check", str(legacy_project), env={"PROJECT_ID": "777"})
    assert "LDCC/2-777 (runs as LDCC-2-777)" in result.out


def test_interpolation_only_variables_are_accepted(tmp_path):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", 'BASE=org\nMODEL="${BASE}/model"\nDATA_FILE=d.csv\n')
    config = load_config(tmp_path, environ={})
    assert config.get("MODEL") == "org/model"


def test_int4_without_cuda_is_a_note_and_cpu_keeps_it(legacy_project):
    """bitsandbytes 0.50 quantizes on the CPU: int4 there is slow, not wrong."""
    shown = atr("check", str(legacy_project), "--cpu")
    assert shown.code == 0, shown.text
    assert "project.env:17: USE_INT4: int4 without CUDA: bitsandbytes quantizes on the CPU" in shown.out
    assert "engine:   autotrain-advanced 0.8.36 + fixes [from-pretrained, qlora-dtype, sft-config" in shown.out
    assert "loss on:  answer (prompt and role markers masked up to the template's answer marker" in shown.out
    cpu = atr("command", str(legacy_project), "--cpu")
    assert "--quantization int4" in cpu.out
    assert "lacks those fixes" in cpu.err


def test_cuda_only_kernels_are_refused_where_they_cannot_run(legacy_project):
    """LIGER_KERNEL and USE_FLASH_ATTENTION_2 are Triton/CUDA kernels: without CUDA, exit 2 naming the key."""
    for key in ("LIGER_KERNEL", "USE_FLASH_ATTENTION_2"):
        shown = atr("check", str(legacy_project), "--cpu", "--set", f"{key}=true")
        assert shown.code == 2, shown.text
        assert f"{key}: {key}=true needs a CUDA GPU (none here)" in shown.err + shown.out
        assert "Traceback" not in shown.text
    shown = atr("check", str(legacy_project), "--cpu")
    assert "weights:  int4 base, fp32 compute and other layers" in shown.out


@pytest.mark.slow
def test_secrets_are_masked_in_check_and_command(legacy_project):
    secret = "hf_sEcReTsEcReTsEcReTsEcReT0123456789"
    write(legacy_project / "project.local.env", f"HF_TOKEN={secret}\n")
    for args in (("check",), ("command",), ("command", "--json")):
        result = atr(*args, str(legacy_project))
        assert result.code == 0
        assert secret not in result.text
    rows = [line.split() for line in atr("check", str(legacy_project)).out.splitlines()]
    assert any(row[:2] == ["HF_TOKEN", "***"] and row[2].endswith("project.local.env:1") for row in rows)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("bundled:nope", "unknown bundled model 'nope'"),
        ("./empty-folder", "has no config.json"),
        ("weights.gguf", "GGUF file not found"),
    ],
)
def test_model_specs(tmp_path, model, message):
    (tmp_path / "empty-folder").mkdir()
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", f"MODEL={model}\nDATA_FILE=d.csv\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})
    assert message in str(caught.value)


def test_bundled_model_resolves_to_the_packaged_gguf(tmp_path):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", "MODEL=bundled:smollm2-135m-instruct\nDATA_FILE=d.csv\n")
    config = load_config(tmp_path, environ={})
    assert config.model.kind == "bundled" and config.model.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_keys_lists_autotrain_fields_and_runner_keys():
    result = atr("keys")
    assert result.code == 0
    for key in ("LR", "BLOCK_SIZE", "CHAT_TEMPLATE", "DISTRIBUTED_BACKEND", "DATA_FILE", "TRUST_REMOTE_CODE"):
        assert f"\n{key} " in "\n" + result.out


def test_hosted_backend_needs_token_and_username(tmp_path):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\nBACKEND=spaces-a10g-large\n")
    result = atr("check", str(tmp_path))
    assert result.code == 2
    assert "HF_TOKEN: BACKEND=spaces-a10g-large needs a token" in result.err
    assert "BACKEND: AutoTrain's hosted backend spaces-a10g-large needs PUSH_TO_HUB=true" in result.err
    ok = atr(
        "command",
        str(tmp_path),
        "--set",
        "PUSH_TO_HUB=true",
        "--set",
        "USERNAME=me",
        env={"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz0123"},
    )
    assert ok.code == 0, ok.text
    assert ok.out.strip().endswith("--backend spaces-a10g-large")
    assert "hf_abc" not in ok.out and "--push-to-hub" not in ok.out


def test_shipped_projects_pass_check():
    """The README's examples: the real project's env file (unchanged) and the demo."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    assert (root / "projects/ldcc-13b/project.env").read_text(encoding="utf-8") == LEGACY_ENV
    for project in ("projects/ldcc-13b", "projects/demo"):
        result = atr("check", project, cwd=root)
        assert result.code == 0, result.text
        assert "ok: no errors" in result.out


def test_values_with_brackets_print_as_written(tmp_path):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\nPROJECT_NAME=x[/]\nTXT_Q_MARKER=[/INST]\n")
    result = atr("check", str(tmp_path))
    assert result.code == 0, result.text
    assert "[/INST]" in result.out and "x[/]" in result.out


def test_typed_keys_with_token_in_the_name_are_not_secrets(legacy_project):
    write(legacy_project / "project.local.env", "ADD_EOS_TOKEN=true\nMAX_NEW_TOKENS=1024\n")
    line = atr("command", str(legacy_project)).out
    assert "--block_size 1024" in line and "--add-eos-token" in line and "***" not in line
    rows = [r.split()[:2] for r in atr("check", str(legacy_project)).out.splitlines()]
    assert ["MAX_NEW_TOKENS", "1024"] in rows and ["ADD_EOS_TOKEN", "true"] in rows


def test_a_broken_line_never_echoes_a_token(tmp_path):
    token = "hf_abcdefghijklmnopqrstuvwxyz0123456789"
    write(tmp_path / "project.env", f'MODEL=org/m\nHF_TOKEN {token}\nOTHER: {token}\nHF_TOKEN="{token}" junk\n')
    result = atr("check", str(tmp_path), "--set", f"HF_TOKEN {token}")
    assert result.code == 2
    assert token not in result.text
    assert "project.env:2: HF_TOKEN: no '=' after the key" in result.err


def test_check_from_inside_the_project_folder(tmp_path):
    project = tmp_path / "projects" / "mine"
    write_csv(project / "d.csv", ["x"])
    write(project / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\n")
    result = atr("check", ".", cwd=project)
    assert result.code == 0, result.text
    assert "project:  mine" in result.out


@pytest.mark.parametrize(
    ("first", "message"), [("[1, 2]", "first record is a JSON list"), ("null", "first record is a JSON NoneType")]
)
def test_jsonl_whose_first_record_is_not_an_object(tmp_path, first, message):
    write(tmp_path / "d.jsonl", first + "\n")
    write(tmp_path / "project.env", "MODEL=org/m\nDATA_FILE=d.jsonl\n")
    result = atr("check", str(tmp_path))
    assert result.code == 2 and message in result.err


def test_block_size_list_is_rejected(legacy_project):
    result = atr("check", str(legacy_project), "--set", "BLOCK_SIZE=512,1024")
    assert result.code == 2
    assert "BLOCK_SIZE: AutoTrain's LLM trainer takes one block size" in result.err
