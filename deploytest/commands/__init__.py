"""The `deploytest` subcommands: each a thin adapter from arguments to the code it drives."""
