"""Today's open LLM families as tiny random models, and a check that each trains and evaluates.

`catalog` names the families (transformers config and model classes, chat templates, control
tokens) and the chat samples; `harness` builds a tiny model of each and runs it through the real
`atr data`, `atr train` and `atr eval`: `python -m autotrain_runner.families`.
"""
