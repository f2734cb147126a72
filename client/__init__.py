"""The `imagebuilder` command line client: pack a folder, upload it, follow the build.

cli        the typer app: commands, output, exit codes
api        a small typed httpx wrapper of the HTTP API (API.md)
follow     server-sent events: parsing, and following a log with resume
packing    zipping a folder, honouring .dockerignore and .gitignore (rules in `ignore`)
config     server URL and token from flags, environment or config file
terminal   neutralising terminal escape sequences in server-controlled text
render     how builds, lists and summaries look on a terminal
"""

__version__ = "0.1.0"
