"""`python -m rnnexp ...` is the same entrypoint as `rnnexp ...`."""

from rnnexp.cli import console

if __name__ == "__main__":
    console()
