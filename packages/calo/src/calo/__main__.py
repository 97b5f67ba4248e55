"""``python -m calo``: the calo command line."""

from .cli import main

main()
