"""Memory estimate: the bytes a training step, and inference, take for a model's shape and settings.

Everything here is arithmetic on the model's shape (`Architecture`); nothing imports torch. Figures
are bytes; reports print GB (10^9 bytes). The training estimate follows what AutoTrain 0.8.36 really
does (read from `trainers/clm/utils.py`, TRL's SFTTrainer and PEFT):

- weights: the frozen base in the run's dtype (`precision.base_dtype`): a LoRA run under fp16/bf16
  loads it in that 16-bit type (2 B a parameter); without mixed precision, and for full fine-tuning,
  fp32 (4 B). int4 is bitsandbytes NF4 with double quantization off: 0.5 B plus one fp32 absmax per
  64 weights = 0.5625 B for the decoder's linear layers; int8 is 1 B; the rest (embeddings,
  lm_head, norms) stays in the base's dtype (TRL 1.x no longer casts it to fp32).
- trainable state: each LoRA parameter (r x (in + out) per adapted linear layer) is fp32 and has
  an fp32 gradient and two AdamW moments: 16 B; on a quantized base TRL casts the adapters to bf16
  (QLoRA's rule): 8 B. Full fine-tuning adds 12 B to every parameter.
- half-precision copies: under fp16/bf16 autocast a frozen fp32 linear layer saves the 2-byte
  copy of its weight that it multiplied with, for the backward pass: with full fine-tuning every
  decoder linear layer (one layer at a time with checkpointing) and the lm_head. A 16-bit base
  needs none. int4 dequantizes each linear layer to the compute dtype for its matmul: one buffer
  of the largest.
- activations, per token (T = BATCH_SIZE x BLOCK_SIZE tokens; packing fills every block), with
  e = 2 under fp16/bf16 autocast else 4, d = the dropout mask (1 B on CUDA, 4 B on CPU, 0 with
  LORA_DROPOUT=0), h hidden size, a = heads x head_dim, i intermediate size, r the LoRA rank;
  what one decoder layer saves for the backward pass:
      8h                      the fp32 residual stream, saved by both RMSNorms
    + sum over adapted linear layers of in x (e + d) + r x e
                              the dropout output lora_A multiplies (or its half copy), the
                              dropout mask, and lora_A's output that lora_B multiplies
    + 4ea + 4 x heads         SDPA's q, k, v (k and v repeated to every head), its output, and
                              its fp32 log-sum-exp (no seq x seq matrix: flash/efficient kernels)
    + 3ei                     SiLU's input and output, and the up projection
  the logits: TRL 1.x's SFTTrainer never materialises them (its fused LM head scores the vocabulary
  in chunks of 32768): one chunk, min(V, 32768) x (4 + e) B per token. A plain forward with labels
  (`atr bench memory`, `fused_lm_head=False`) keeps V x 12 B per token in fp32 (the logits, the
  shifted copy the loss makes, and log_softmax's output), plus V x e when the lm_head ran in half
  precision before the upcast.
  Without checkpointing: T x (layers x layer + 4h + logits). With it (AutoTrain's default):
  T x (layers x 4h + max(layer, logits)): the layer inputs are kept, one layer is recomputed
  at a time, and the logits are gone before the first recomputation.
- overhead: 1 GB for the CUDA context, cuBLAS workspaces and the allocator's slack.

Inference (`atr eval`/`atr chat` on CUDA, or a vLLM server): weights in bf16/fp16 (2 B), or
0.5625 B for linear layers with QUANTIZATION=int4; the KV cache, 2 x layers x kv_heads x
head_dim x 2 B per token for EVAL_BATCH_SIZE x BLOCK_SIZE tokens; one layer's prefill
intermediates, T x (3i + 4h) x 2 B; and the same 1 GB overhead.

`atr bench memory` compares these formulas with one measured LoRA step on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from autotrain_runner.training import precision

GB = 1e9
CUDA_OVERHEAD = 1.0 * GB
NF4_BYTES = 0.5 + 4 / 64  # AutoTrain sets bnb_4bit_use_double_quant=False: one fp32 absmax per 64 weights
LINEAR_BYTES = {"int4": NF4_BYTES, "int8": 1.0, "none": 4.0}
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MAX_GPUS = 8  # suggestions stay within one machine
LOGPROB_CHUNK = 32768  # vocabulary entries TRL's fused LM head scores at a time (trl.trainer.utils)

# Standard shapes a MODEL_PARAMS value is scaled from:
# (name, hidden, intermediate, layers, heads, kv_heads, vocab, tied embeddings).
REFERENCE_SHAPES = (
    ("SmolLM2-135M", 576, 1536, 30, 9, 3, 49152, True),
    ("SmolLM2-360M", 960, 2560, 32, 15, 5, 49152, True),
    ("Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, True),
    ("Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256, True),
    ("Llama-2-7B", 4096, 11008, 32, 32, 32, 32000, False),
    ("Llama-3.1-8B", 4096, 14336, 32, 32, 8, 128256, False),
    ("SOLAR-10.7B", 4096, 14336, 48, 32, 8, 32000, False),
    ("Llama-2-13B", 5120, 13824, 40, 40, 40, 32000, False),
    ("CodeLlama-34B", 8192, 22016, 48, 64, 8, 32000, False),
    ("Llama-3.1-70B", 8192, 28672, 80, 64, 8, 128256, False),
    ("Llama-3.1-405B", 16384, 53248, 126, 128, 8, 128256, False),
)

# --------------------------------------------------------------------------------------------------
# The model's shape


@dataclass(frozen=True)
class Architecture:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    source: str  # where the shape was read, for the report
    experts: int = 1  # mixture of experts: every expert is in memory ...
    active_experts: int = 1  # ... but only these run for a token
    max_positions: int | None = None

    @property
    def attention(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    def linears(self) -> dict[str, tuple[int, int, int]]:
        """(in features, out features, copies per layer) of each decoder linear layer."""
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, self.attention, 1),
            "k_proj": (h, self.kv, 1),
            "v_proj": (h, self.kv, 1),
            "o_proj": (self.attention, h, 1),
            "gate_proj": (h, i, self.experts),
            "up_proj": (h, i, self.experts),
            "down_proj": (i, h, self.experts),
        }

    @property
    def layer_linear_params(self) -> int:
        return sum(n_in * n_out * copies for n_in, n_out, copies in self.linears().values())

    @property
    def linear_params(self) -> int:
        return self.layers * self.layer_linear_params

    @property
    def embedding_params(self) -> int:
        """The input embeddings and the lm_head (one matrix when tied)."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        norms = (2 * self.layers + 1) * self.hidden
        return self.linear_params + self.embedding_params + norms

    def describe(self) -> str:
        return (
            f"{self.layers} layers, hidden {self.hidden}, {self.heads}/{self.kv_heads} heads, "
            f"vocab {self.vocab}, {short_count(self.params)} parameters"
        )


def from_config_json(data: dict[str, Any], source: str) -> Architecture | str:
    """The shape from a transformers `config.json` of the Llama family; a reason when it has none."""
    if isinstance(data.get("text_config"), dict):  # multimodal configs nest the language model
        data = {**data, **data["text_config"]}
    needed = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in needed if not isinstance(data.get(k), int)]
    if missing:
        return f"{source} has no {', '.join(missing)} (not a Llama-style config)"
    hidden, heads = data["hidden_size"], data["num_attention_heads"]
    return Architecture(
        hidden=hidden,
        intermediate=int(data.get("intermediate_size") or 4 * hidden),
        layers=data["num_hidden_layers"],
        heads=heads,
        kv_heads=int(data.get("num_key_value_heads") or heads),
        head_dim=int(data.get("head_dim") or hidden // heads),
        vocab=data["vocab_size"],
        tied=bool(data.get("tie_word_embeddings", False)),
        source=source,
        experts=int(data.get("num_local_experts") or 1),
        active_experts=int(data.get("num_experts_per_tok") or 1),
        max_positions=data.get("max_position_embeddings"),
    )


def from_param_count(params: float, source: str) -> Architecture:
    """The nearest standard shape (in log size); its layer count scaled to `params` when that is
    more than 10% away, since sizes are nominal ("7B" is Llama-2-7B's 6.7B).

    Width, heads and vocabulary stay those of the reference: they decide activations and the
    KV cache per layer, and models of one size class share them far more often than depth.
    """
    shapes = [Architecture(h, i, n, a, kv, h // a, v, tied, name) for name, h, i, n, a, kv, v, tied in REFERENCE_SHAPES]
    nearest = min(shapes, key=lambda s: abs(math.log(s.params / params)))
    if abs(math.log(nearest.params / params)) < math.log(1.1):
        return replace(nearest, source=f"{source} (the {nearest.source} shape)")
    fixed = nearest.params - nearest.linear_params - (2 * nearest.layers) * nearest.hidden
    per_layer = nearest.layer_linear_params + 2 * nearest.hidden
    layers = max(1, round((params - fixed) / per_layer))
    return replace(
        nearest,
        layers=layers,
        source=f"{source} (the {nearest.source} shape, {layers} layers instead of {nearest.layers})",
    )


# --------------------------------------------------------------------------------------------------
# Estimates


@dataclass(frozen=True)
class Training:
    """The settings that decide training memory, as AutoTrain will apply them."""

    batch_size: int
    block_size: int
    peft: bool
    quantization: str  # "none", "int8", "int4" (only with PEFT)
    mixed_precision: str  # "none", "fp16", "bf16"
    checkpointing: bool
    lora_r: int
    lora_dropout: float
    targets: tuple[str, ...]  # decoder linear layers that get a LoRA adapter
    fused_lm_head: bool = True  # TRL's SFTTrainer scores the vocabulary in chunks (no full logits)

    def describe(self) -> str:
        return f"{self.batch_size} x {self.block_size} tokens, {'' if self.checkpointing else 'no '}checkpointing"


@dataclass(frozen=True)
class Estimate:
    parts: dict[str, tuple[float, str]]  # name -> (bytes, detail), in print order

    @property
    def total(self) -> float:
        return sum(b for b, _ in self.parts.values())

    def describe(self) -> str:
        shown = " + ".join(f"{name} {gb(b)}{f' ({d})' if d else ''}" for name, (b, d) in self.parts.items() if b)
        return f"{gb(self.total)} GB = {shown}"


def lora_params(arch: Architecture, t: Training) -> int:
    linears = arch.linears()
    return arch.layers * sum(t.lora_r * (linears[n][0] + linears[n][1]) * linears[n][2] for n in t.targets)


def layer_activation_bytes(arch: Architecture, t: Training, e: int, mask: int) -> float:
    """Bytes one decoder layer saves for the backward pass, per token (the formula in the module doc)."""
    linears = arch.linears()
    # full fine-tuning saves every linear layer's input for its weight gradient, with no mask
    targets = t.targets if t.peft else LLAMA_LINEARS
    r = t.lora_r if t.peft else 0
    d = mask if t.peft and t.lora_dropout > 0 else 0
    adapters = 0.0
    for name in targets:
        n_in, _, copies = linears[name]
        adapters += (arch.active_experts if copies > 1 else 1) * (n_in * (e + d) + r * e)
    norms = 2 * 4 * arch.hidden
    attention = 4 * e * arch.attention + 4 * arch.heads
    mlp = 3 * e * arch.intermediate * arch.active_experts
    return norms + adapters + attention + mlp


def estimate_training(arch: Architecture, t: Training, device: str = "cuda") -> Estimate:
    """Peak memory of a training step. `device="cpu"` is how `atr bench memory` measures it:
    no autocast (AutoTrain trains in fp32 there), a float dropout mask, no CUDA context."""
    gpu = device == "cuda"
    half = gpu and t.mixed_precision in ("fp16", "bf16")
    e = 2 if half else 4
    quantization = t.quantization if t.peft else "none"
    base = precision.base_dtype(t.mixed_precision, t.peft, cuda=gpu, cpu_bf16=False)
    base_bytes = precision.BYTES[base]
    linear_bytes = LINEAR_BYTES[quantization] if quantization != "none" else base_bytes
    others = arch.params - arch.linear_params
    weights = arch.linear_params * linear_bytes + others * base_bytes
    if t.peft:
        trainable = lora_params(arch, t)
        per = 8.0 if quantization != "none" else 16.0
        state, state_note = trainable * per, f"LoRA {short_count(trainable)} + grads + AdamW"
        if quantization != "none":
            state_note += " in bf16"
    else:
        state, state_note = arch.params * 12.0, "grads + AdamW for every parameter"
    copies = 0.0
    if half and base_bytes == 4:  # autocast's 2-byte copies of fp32 weights, kept for the backward pass
        copies = arch.vocab * arch.hidden * 2.0
        if quantization == "none":
            copies += (arch.layer_linear_params if t.checkpointing else arch.linear_params) * 2.0
    tokens = t.batch_size * t.block_size
    layer = layer_activation_bytes(arch, t, e, mask=1 if gpu else 4) * tokens
    if t.fused_lm_head:
        logits = min(arch.vocab, LOGPROB_CHUNK) * (4 + (e if e < 4 else 0)) * tokens
    else:
        logits = arch.vocab * (12 + (e if e < 4 else 0)) * tokens
    if t.checkpointing:
        activations = arch.layers * 4 * arch.hidden * tokens + max(layer, logits)
    else:
        activations = arch.layers * layer + 4 * arch.hidden * tokens + logits
    parts = {
        "weights": (weights, quantization if quantization != "none" else precision.SHORT[base]),
        "trainable": (state, state_note),
        "activations": (activations, t.describe()),
    }
    if copies:
        parts[f"{t.mixed_precision} weight copies"] = (copies, "")
    if quantization == "int4":
        # each linear layer is dequantized to the compute dtype for its matmul, one at a time
        largest = max(n_in * n_out for n_in, n_out, _ in arch.linears().values())
        parts["dequant buffer"] = (largest * base_bytes, "")
    if gpu:
        parts["CUDA"] = (CUDA_OVERHEAD, "")
    return Estimate(parts)


def checkpoint_bytes(arch: Architecture, t: Training) -> tuple[float, str]:
    """Disk for one resumable checkpoint: the trained weights and AdamW's two moments, in the
    trainable parameters' dtype (fp32 LoRA: 4 + 8 bytes a parameter; QLoRA's bf16 LoRA: 2 + 4), or
    the whole model and its moments for full fine-tuning. The tokenizer files come on top."""
    if t.peft:
        trainable = lora_params(arch, t)
        per = 6.0 if (t.quantization or "none") != "none" else 12.0
        return trainable * per, f"LoRA {short_count(trainable)} + AdamW states"
    base = precision.base_dtype(t.mixed_precision, t.peft, cuda=True, cpu_bf16=False)
    return arch.params * (precision.BYTES[base] + 8.0), "every weight + AdamW states"


def estimate_inference(arch: Architecture, batch: int, tokens: int, int4: bool) -> Estimate:
    weights = arch.linear_params * (NF4_BYTES if int4 else 2.0) + (arch.params - arch.linear_params) * 2.0
    kv_cache = 2 * arch.layers * arch.kv * 2.0 * batch * tokens
    working = batch * tokens * (3 * arch.intermediate * arch.active_experts + 4 * arch.hidden) * 2.0
    return Estimate(
        {
            "weights": (weights, "int4" if int4 else "16-bit"),
            "KV cache": (kv_cache, f"{batch} x {tokens} tokens"),
            "prefill": (working, ""),
            "CUDA": (CUDA_OVERHEAD, ""),
        }
    )


# --------------------------------------------------------------------------------------------------
# What to change when it does not fit


def training_fixes(arch: Architecture, t: Training, gradient_accumulation: int, capacity: float) -> list[str]:
    """Changes applied one after another until the estimate fits; and several GPUs, where that helps."""
    steps: list[tuple[str, dict[str, Any]]] = []
    if not t.peft:
        steps.append(("PEFT=true QUANTIZATION=int4", {"peft": True, "quantization": "int4"}))
    elif t.quantization != "int4":
        steps.append(("QUANTIZATION=int4", {"quantization": "int4"}))
    if not t.checkpointing:
        steps.append(("DISABLE_GRADIENT_CHECKPOINTING=false", {"checkpointing": True}))
    if t.batch_size > 1:
        accumulation = t.batch_size * gradient_accumulation  # the same effective batch
        steps.append((f"BATCH_SIZE=1 GRADIENT_ACCUMULATION={accumulation}", {"batch_size": 1}))
    fixes: list[str] = []
    current, total = t, estimate_training(arch, t).total
    for change, fields in steps:
        current = replace(current, **fields)
        total = estimate_training(arch, current).total
        fixes.append(f"{change} -> {gb(total)} GB")
        if total <= capacity:
            break
    gpus = _zero3_gpus(arch, t, capacity)  # an alternative that keeps the precision as it is
    if gpus or total > capacity:
        fixes.append(gpus or "or a GPU with more memory")
    return fixes


def _zero3_gpus(arch: Architecture, t: Training, capacity: float) -> str | None:
    """DeepSpeed ZeRO-3 (AutoTrain's DISTRIBUTED_BACKEND=deepspeed) shards weights and optimizer
    state over the GPUs; activations, copies and the CUDA context stay whole on each one. Not for
    a 4/8-bit model: AutoTrain does not set up bitsandbytes for sharding."""
    if t.peft and t.quantization != "none":
        return None
    parts = estimate_training(arch, t).parts
    sharded = parts["weights"][0] + parts["trainable"][0]
    whole = sum(b for name, (b, _) in parts.items() if name not in ("weights", "trainable"))
    if whole >= capacity:
        return None
    gpus = math.ceil(sharded / (capacity - whole))
    if gpus < 2 or gpus > MAX_GPUS:
        return None
    each = sharded / gpus + whole
    return (
        f"or {gpus} GPUs with DISTRIBUTED_BACKEND=deepspeed (ZeRO-3 shards weights and optimizer) -> {gb(each)} GB each"
    )


def inference_fixes(arch: Architecture, batch: int, tokens: int, int4: bool, capacity: float) -> list[str]:
    fixes = []
    if not int4:
        total = estimate_inference(arch, batch, tokens, int4=True).total
        fixes.append(f"int4 weights (an AWQ or GPTQ build on vLLM; a QLoRA run in atr eval) -> {gb(total)} GB")
    smaller = batch
    while smaller > 1 and estimate_inference(arch, smaller, tokens, int4).total > capacity:
        smaller //= 2
    if smaller != batch and estimate_inference(arch, smaller, tokens, int4).total <= capacity:
        fixes.append(f"EVAL_BATCH_SIZE={smaller} -> {gb(estimate_inference(arch, smaller, tokens, int4).total)} GB")
    parts = estimate_inference(arch, batch, tokens, int4).parts
    split = parts["weights"][0] + parts["KV cache"][0] + parts["prefill"][0]
    for gpus in (2, 4, 8):  # vLLM's tensor parallelism splits weights and KV cache by a power of two
        each = split / gpus + CUDA_OVERHEAD
        if each <= capacity:
            fixes.append(f"or {gpus} GPUs (vLLM --tensor-parallel-size {gpus}) -> {gb(each)} GB each")
            break
    return fixes


def gb(size: float) -> str:
    value = size / GB
    if value < 1:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def short_count(params: float) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if params >= scale:
            return f"{params / scale:.1f}{suffix}"
    return str(int(params))
