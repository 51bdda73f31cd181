"""Loaded at the start of every process of the vLLM server the runner starts (its folder is put on
PYTHONPATH for that server only): the CPU LoRA fix of `autotrain_runner.generation.vllm_fix` must reach the
engine processes vLLM spawns, which import nothing of the runner otherwise."""

from autotrain_runner.generation.vllm_fix import install_hook

install_hook()
