"""autotrain-runner: env-file projects to verified AutoTrain LLM fine-tuning runs."""

__version__ = "0.1.0"
