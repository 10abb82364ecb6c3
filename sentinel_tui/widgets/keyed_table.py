"""A DataTable of fixed columns whose rows are keyed by an id, updated by diff, selection kept by key.

The DataTable cursor is a row index; rows arriving or leaving would move it onto a different
row. :meth:`KeyedTable.show_rows` records the selected key before a change and puts the cursor
back on that key afterwards (k9s issue #334 is the bug this avoids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.widgets import DataTable


class SortText(Text):
    """A table cell that carries its own sort key (its row's creation time and id)."""

    def __init__(self, text: str, sort_key: tuple[float, str], **kwargs: Any) -> None:
        super().__init__(text, **kwargs)
        self.sort_key = sort_key


class KeyedTable(DataTable[Any]):
    """Rows keyed by id, sorted by the :class:`SortText` cells of ``SORT_COLUMN``, highest first."""

    #: ``(column key, label)`` of each column, in order.
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: The column whose cells are :class:`SortText`; rows are sorted by it, highest key first.
    SORT_COLUMN: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        # What each row currently shows (plain strings), so unchanged cells are not touched.
        self._shown: dict[str, tuple[str, ...]] = {}
        self._column_index = {key: i for i, (key, _) in enumerate(self.COLUMNS)}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        """The key of the row under the cursor, or None."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # cursor outside the table while rows change
            return None
        return None if key.value is None else str(key.value)

    def set_cell(self, key: str, column: str, cell: Text) -> None:
        """Show ``cell`` in row ``key``, column ``column`` (a row not shown: nothing). A longer
        text widens its column ("active" → "revoked", "59m" → "1h00" were cut)."""
        shown = self._shown.get(key)
        if shown is None:
            return
        index = self._column_index[column]
        if shown[index] == cell.plain:
            return
        self.update_cell(key, column, cell, update_width=True)
        self._shown[key] = shown[:index] + (cell.plain,) + shown[index + 1 :]

    def show_rows(self, rows: Iterable[tuple[str, Sequence[Text]]]) -> None:
        """Make the table show exactly ``rows`` (``(key, cells)``); keep the cursor on the same key.

        Gone rows are removed, new ones added, and only the cells whose text changed are
        updated; the rows are sorted again when one was added.
        """
        rows = list(rows)
        selected = self.selected_id
        prev_index = self.cursor_row
        wanted = {key for key, _ in rows}
        added = False
        with self.app.batch_update():
            for key in [k for k in self._shown if k not in wanted]:
                self.remove_row(key)
                del self._shown[key]
            for key, cells in rows:
                plain = tuple(c.plain for c in cells)
                old = self._shown.get(key)
                if old is None:
                    self.add_row(*cells, key=key)
                    added = True
                    self._shown[key] = plain
                elif old != plain:
                    for (col, _), cell in zip(self.COLUMNS, cells, strict=True):
                        self.set_cell(key, col, cell)  # only the cells whose text changed
            if added:
                self.sort(self.SORT_COLUMN, key=lambda cell: cell.sort_key, reverse=True)
            if self.row_count:
                if selected is not None and selected in self._shown:
                    target = self.get_row_index(selected)
                else:
                    target = min(max(prev_index, 0), self.row_count - 1)
                if target != self.cursor_row:
                    self.move_cursor(row=target, animate=False, scroll=False)
