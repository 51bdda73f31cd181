"""`atr eval` end to end on a tiny-model run: base and adapter, split and prompt list."""

import json

from helpers import atr, write

METRIC_KEYS = {
    "chrf",
    "bleu",
    "bleu_tokenize",
    "cosine",
    "cosine_method",
    "rep_2",
    "rep_4",
    "distinct_2",
    "leak_rate",
    "empty_rate",
    "eos_rate",
    "echo_rate",
    "mean_chars",
    "n",
    "seconds",
    "samples_per_s",
    "valid_loss",
    "perplexity",
    "signature",
}


def test_eval_run_against_base_on_test_split_and_prompts(tmp_path, tiny_model, trained_copy):
    project = trained_copy  # the style project with the shared run r1 (conftest)
    write(project / "prompts.txt", "주말에 뭐 할까?\n\n오늘 기분 어때?\n")
    write(project / "list.jsonl", '{"prompt": "안녕?"}\n')
    with (project / "project.env").open("a", encoding="utf-8") as handle:
        handle.write("MAX_NEW_TOKENS=12\nEVAL_BATCH_SIZE=4\nEVAL_PROMPTS=list.jsonl\n")
    assert atr("data", str(project)).code == 0

    result = atr("eval", str(project), "--run", "r1", "--limit", "5", "--compare-base")
    assert result.code == 0, result.text[-3000:]
    tuned_dir, base_dir = (
        project / "runs/r1/eval",
        project / "eval" / f"base-{tiny_model.as_posix().strip('/').replace('/', '-')}",
    )
    for folder in (tuned_dir, base_dir):
        figures = json.loads((folder / "metrics.json").read_text())
        assert set(figures) >= METRIC_KEYS, METRIC_KEYS - set(figures)
        assert figures["n"] == 5 and figures["cosine_method"].startswith("tfidf-char-2-4")
        assert 0 <= figures["chrf"] <= 100 and figures["valid_loss"] > 0
        assert figures["signature"]["generation"]["decoding"] == "greedy"
        assert figures["signature"]["template"]["name"] == "instruct-ko"
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 5 and rows[0]["prompt"].endswith("### 답변:\n")
        assert set(rows[0]["flags"]) == {"leak", "repetition", "empty", "no_eos", "echo"}
        assert "## Worst samples" in (folder / "report.md").read_text()
    assert json.loads((tuned_dir / "metrics.json").read_text())["signature"]["adapter"].endswith("r1/style")
    assert json.loads((base_dir / "metrics.json").read_text())["signature"]["adapter"] is None
    listed = [json.loads(line) for line in (tuned_dir / "prompts" / "predictions.jsonl").read_text().splitlines()]
    assert [r["reference"] for r in listed] == [None]
    assert (tuned_dir / "prompts" / "compare.md").exists(), "EVAL_PROMPTS: base vs fine-tuned on the list too"
    compare = (tuned_dir / "compare.md").read_text()
    assert "| chrf |" in compare and compare.count("| test-") == 5

    listed = atr("eval", str(project), "--prompts", str(project / "prompts.txt"), "--out", str(tmp_path / "p"))
    assert listed.code == 0, listed.text[-2000:]
    figures = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert figures["n"] == 2 and "chrf" not in figures, "no references: outputs and flags only"


def test_eval_without_a_run_or_split_is_a_clear_error(tmp_path, tiny_model):
    write(tmp_path / "d.csv", "text\nx\n")
    write(tmp_path / "project.env", f"MODEL={tiny_model}\nDATA_FILE=d.csv\n")
    result = atr("eval", str(tmp_path))
    assert result.code == 2 and "no succeeded run to evaluate" in result.err
    base = atr("eval", str(tmp_path), "--base")
    assert base.code == 2 and "no test split" in base.err and "Traceback" not in base.err


def test_unavailable_bleu_tokenizer_is_a_config_error(style_project):
    assert atr("data", str(style_project)).code == 0
    result = atr("eval", str(style_project), "--base", "--set", "BLEU_TOKENIZE=ko-mecab")
    assert result.code == 2 and "sacrebleu[ko]" in result.err


def test_without_vllm_the_engine_is_hf_and_says_how_to_install_vllm(style_project):
    """vLLM made unimportable (as where it is not installed): auto says so and uses hf; asking for
    vllm by name warns with the install commands and generates with hf."""
    import subprocess
    import sys

    assert atr("data", str(style_project)).code == 0
    hide = (
        "import sys; sys.modules['vllm'] = None; from autotrain_runner.cli.main import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    for flags, expected, ending in (
        ([], "engine: hf (vLLM is not installed; ./run.sh installs it unless ATR_VLLM=0: ", ")"),
        (
            ["--engine", "vllm"],
            "warning: GENERATION_ENGINE=vllm: vLLM is not installed (./run.sh installs it unless ATR_VLLM=0: ",
            "; generating with hf",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-c", hide, "eval", str(style_project), "--base", "--limit", "2", *flags],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        line = next(line for line in done.stdout.splitlines() if "vLLM is not installed" in line)
        assert line.startswith(expected) and line.endswith(ending), line
        assert (
            "-r requirements/vllm-cuda.txt` on CUDA 13" in line and "requirements/vllm-cpu.txt` without a GPU" in line
        )
        assert "engine hf" in done.stdout and "Traceback" not in done.stderr
