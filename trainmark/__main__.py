"""python -m trainmark: the same as the trainmark command."""

from trainmark.cli import main

main()
