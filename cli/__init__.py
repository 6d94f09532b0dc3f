"""The ``iter`` command line: typer commands that talk to Temporal and to the project file."""
