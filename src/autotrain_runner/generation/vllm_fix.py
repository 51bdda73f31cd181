"""A fix carried for vLLM on the CPU, installed in every process of the server the runner starts.

vLLM's LoRA on the CPU (the PyTorch-native punica ops, `vllm/lora/ops/torch_ops/lora_ops.py`)
gathers a copy of the adapter's weights for every token (`lora_weights[indices]`, tokens x rank x
hidden) before each multiplication. On a prefill of thousands of tokens that is gigabytes per
layer: 64 prompts through SmolLM2 with a rank-16 adapter ran at 5 tokens/s, a fifth of HF. The fix
computes the same products grouped by adapter (one matrix product per adapter in the batch), with
the same indexing, dtype and output rules, so the results are those of the original ops.

The fix is an import hook: the modules are patched as they load. vLLM's engine processes are
spawned fresh, so the server the runner starts has `vllm_site/` on its PYTHONPATH, whose
`sitecustomize` installs the hook in every process of it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

FIXED = "vllm.lora.ops.torch_ops.lora_ops"
FOR_VLLM = "0.32.0"  # the version whose ops this replaces (requirements/vllm-*.txt); another keeps its own


def _products(inputs, weights, indices, dtype):
    """`einsum("bi, boi -> bo", inputs, weights[indices])` without the per-token copy of the weights."""
    import torch

    if weights.dim() == 4:
        weights = weights.squeeze(dim=1)
    inputs = inputs.to(dtype=dtype)
    chosen = torch.unique(indices)
    if chosen.numel() == 1:  # the usual batch: every token on one adapter
        return inputs @ weights[int(chosen)].to(dtype=dtype).T
    outputs = inputs.new_empty((inputs.shape[0], weights.shape[-2]), dtype=dtype)
    for index in chosen.tolist():
        rows = indices == index
        outputs[rows] = inputs[rows] @ weights[index].to(dtype=dtype).T
    return outputs


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(
    inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int, slice_size: int, add_inputs=True
):
    outputs = _products(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs[:]


PATCHED = ("vllm.lora.ops.torch_ops.lora_ops", "vllm.lora.punica_wrapper.punica_cpu")
REPLACED = {"bgmv_shrink": bgmv_shrink, "bgmv_expand": bgmv_expand, "bgmv_expand_slice": bgmv_expand_slice}


def _patch(module) -> None:
    from autotrain_runner import versions

    version = versions.vllm()
    if version != FOR_VLLM:  # its ops may have other signatures now: vLLM's own run, slower but correct
        if module.__name__ == PATCHED[0]:
            print(
                f"autotrain-runner: {FIXED}: not replaced: the fix is written for vLLM {FOR_VLLM}, this is {version}",
                file=sys.stderr,
                flush=True,
            )
        return
    for name, function in REPLACED.items():
        if hasattr(module, name):
            setattr(module, name, function)
    if module.__name__ == PATCHED[0]:
        print(
            f"autotrain-runner: {FIXED}: LoRA ops grouped by adapter (process {os.getpid()})",
            file=sys.stderr,
            flush=True,
        )


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the modules of PATCHED as they are imported, in whichever process imports them."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install_hook() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
