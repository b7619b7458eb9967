"""People: account actions shared by the pages and the CLI, and their passwords."""
