"""`python -m cli` runs the egovmon command."""

from cli.main import app

app(prog_name="egovmon")
