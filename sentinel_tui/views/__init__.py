"""The four views of the command center (switched with 1–4)."""
