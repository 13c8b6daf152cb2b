"""One thin module per `python -m engine` command: `add_arguments(parser)` and `run(args)`."""
