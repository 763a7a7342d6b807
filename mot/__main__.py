"""`python -m mot` runs the command-line interface."""

from mot.cli.main import main

main()
