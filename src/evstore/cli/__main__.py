"""``python -m evstore.cli``: the same as the ``evstore`` console script."""

from evstore.cli import main

main()
