"""Third-party serving engines run offline: how to install and start each.

A leaf package: it imports nothing of ours but `procgroup`. `vllm` is the real vLLM engine
(its CPU build) in its own venv, `.venv-vllm` (`make vllm`); engines/README.md has the
figures and what is fragile.
"""
