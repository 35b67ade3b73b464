"""The embedded Vertex AI emulator (a subset of REST v1); see emulator/README.md."""
