"""`python -m imgpress_cli` is the same as the `imgpress` command."""
from imgpress_cli.main import main

main()
