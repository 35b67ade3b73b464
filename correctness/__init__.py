"""The correctness phase: before the load, the endpoint answers a fixed set of prompts with
deterministic decoding, and the answers are judged against the model artifact (parity),
the team's expectations (an expectations file) and, at record time, the series' last
passing run (drift). Plain Python; torch and transformers load only for a reference model."""
