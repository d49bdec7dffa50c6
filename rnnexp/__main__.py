"""`python -m rnnexp ...` is the same entrypoint as `rnnexp ...`."""

from rnnexp.cli import main

if __name__ == "__main__":
    main()
