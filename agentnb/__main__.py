"""`python -m agentnb` runs the command line."""

from agentnb.cli import main

if __name__ == "__main__":
    main()
