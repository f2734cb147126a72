"""`python -m client`: the same as the `imagebuilder` command."""

from client.cli import main

main()
