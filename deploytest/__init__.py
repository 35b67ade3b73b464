"""deploytest: the command-line door to the pipeline, the emulator and the model server."""
