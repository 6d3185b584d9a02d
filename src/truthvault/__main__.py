"""``python -m truthvault``."""

from .cli import main

main()
