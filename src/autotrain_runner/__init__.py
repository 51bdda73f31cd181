"""autotrain-runner: env-file projects to verified AutoTrain LLM fine-tuning runs."""

import logging

__version__ = "0.1.0"


class _NoHubKernelNotice(logging.Filter):
    """bitsandbytes, on a CPU with AVX-512 BF16, tries a fused 4-bit kernel that the `kernels` package
    would fetch from the Hub (kernels-community) and warns when it cannot, at import, whether or not the
    run quantizes. Machines that train offline cannot fetch it in any case, so the `kernels` package is
    not installed; bitsandbytes' built-in CPU path does the 4-bit work, and the notice is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "gemm_4bit_forward from kernels-community" not in record.getMessage()


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoHubKernelNotice())
