"""``python -m firstvalue`` is the ``firstvalue`` command."""

from firstvalue.cli import app

app(prog_name="firstvalue")
