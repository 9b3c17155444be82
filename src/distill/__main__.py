"""`python -m distill ...`: the same command as the `distill` script, for when the script's folder is not on PATH
(a venv not activated, `pip install --user`). Without this file Python refuses: 'distill' is a package and cannot
be directly executed."""

from distill.cli import main

if __name__ == "__main__":
    main()
