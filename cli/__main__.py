"""`python -m cli` runs the egovmon command."""

from cli.main import main

main()
