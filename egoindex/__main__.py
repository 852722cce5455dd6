"""``python -m egoindex`` is the ``egoindex`` command."""

from egoindex.cli.main import app

if __name__ == "__main__":
    app(prog_name="egoindex")
