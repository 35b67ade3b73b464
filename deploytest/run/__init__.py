"""`deploytest run`: one offline run on the production path, in its steps (orchestrator),
with its progress, results and summary."""
