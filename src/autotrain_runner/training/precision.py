"""The dtypes a run trains in: one rule for the trainer, the memory preflight, `atr check` and run.json.

- The frozen base of a LoRA run loads in the run's 16-bit type (MIXED_PRECISION bf16 or fp16), as
  LLaMA-Factory, axolotl and unsloth load it: half the bytes of fp32, and no autocast copies of its
  weights. The LoRA weights and their AdamW state stay fp32 (PEFT upcasts adapters of a 16-bit base).
- Full fine-tuning keeps fp32 weights under autocast: they are what the optimizer updates.
- QLoRA's int4 layers compute in that same type (AutoTrain hard-codes fp16), and the layers that are
  not quantized (embeddings, norms, lm_head) load in it.
- Without CUDA there is no autocast (`engine._training_args`). A bf16 base is used only where the CPU
  multiplies bf16 natively (AVX-512 BF16 or AMX); on AVX2 it is emulated and slower than fp32
  (docs/benchmarks.md), and fp16 has no fast CPU path at all, so both load fp32 there.
"""

from __future__ import annotations

FLOAT32, BFLOAT16, FLOAT16 = "float32", "bfloat16", "float16"
_HALF = {"bf16": BFLOAT16, "fp16": FLOAT16}
BYTES = {FLOAT32: 4.0, BFLOAT16: 2.0, FLOAT16: 2.0}
SHORT = {FLOAT32: "fp32", BFLOAT16: "bf16", FLOAT16: "fp16"}


def base_dtype(mixed_precision: str | None, peft: bool, cuda: bool, cpu_bf16: bool) -> str:
    """The torch dtype name the frozen base (and QLoRA's matmuls) use."""
    half = _HALF.get(str(mixed_precision or "none"))
    if half is None or not peft:
        return FLOAT32
    if cuda:
        return half
    return BFLOAT16 if half == BFLOAT16 and cpu_bf16 else FLOAT32


def describe(mixed_precision: str | None, peft: bool, quantization: str | None, cuda: bool, cpu_bf16: bool) -> str:
    """`base bf16, LoRA fp32, autocast bf16`: the `weights:` line of `atr check`, run.json and the card."""
    base = SHORT[base_dtype(mixed_precision, peft, cuda, cpu_bf16)]
    quantized = peft and quantization in ("int4", "int8")
    autocast = str(mixed_precision or "none") if cuda and mixed_precision in _HALF else "none"
    if not peft:
        return f"full fine-tuning: fp32 weights and AdamW state, autocast {autocast}"
    frozen = f"{quantization} base, {base} compute and other layers" if quantized else f"{base} base"
    adapters = "LoRA bf16 (TRL's QLoRA rule)" if quantized else "LoRA fp32"
    why = ""
    if not cuda and mixed_precision in _HALF and base == "fp32":
        why = f" (no CUDA; {mixed_precision} is {'emulated' if mixed_precision == 'bf16' else 'slow'} on this CPU)"
    return f"{frozen}, {adapters}, autocast {autocast}{why}"
