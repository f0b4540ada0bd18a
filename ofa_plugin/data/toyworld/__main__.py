"""`python -m ofa_plugin.data.toyworld --out DIR ...` writes a toy world (see `cli.main`)."""
from .cli import main

if __name__ == "__main__":
    main()
