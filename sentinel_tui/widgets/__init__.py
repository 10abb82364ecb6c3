"""Widgets of the command center. None of them does I/O."""
