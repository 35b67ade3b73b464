"""Run records, the history store they live in, and the statistical verdict over a series."""
