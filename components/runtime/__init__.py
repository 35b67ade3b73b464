"""The plain-Python code each KFP component runs: `components/NAME.py` declares the
component (typed inputs and outputs, docstring), `components/runtime/NAME.py` does the work and
runs, and is tested, without KFP (as Google Cloud Pipeline Components pair `component.py`
with its launcher)."""
