"""A line-based virtual table for the history view (the Line API instead of ``DataTable``).

At a million audit events the history view holds many pages of rows, and ``DataTable`` renders
each visible cell through a Rich console render whose caches every ``add_row`` and cursor move
throws away: ``ctrl+end`` paid two full-table renders (measured 128 ms median, 253 ms max in
``benchmarks/tui.py``). Here a row is plain data (its key and each cell's text and style) and its
:class:`~textual.strip.Strip` is built from segments with cell-length crop/pad, cached per row,
and dropped only for rows whose look changed: a cursor move re-renders two rows, appending a page
renders nothing until those rows scroll into view (O(page) work), and only a change of width,
focus, theme or a column growing wider re-renders the (visible) rows.

It looks like the ``DataTable`` it replaces: one fixed header row, auto-sized columns (a column is
as wide as its widest label or cell and never shrinks, as in ``DataTable``), one cell of padding
each side, zebra stripes and a row cursor, all coloured by the same ``datatable--*`` component
classes so the app's stylesheet and theme drive it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Justify = Literal["left", "right"]

#: Strips kept per table; only the visible rows are ever built, so this bounds a long session.
STRIP_CACHE_MAX = 4096


class Column(NamedTuple):
    """One column: its key, header label and how its cells are aligned."""

    key: str
    label: str
    justify: Justify = "left"


class Cell(NamedTuple):
    """One cell as data: the text shown (one line) and a Rich style string for it."""

    text: str
    style: str = ""


class _Row:
    __slots__ = ("cells", "key")

    def __init__(self, key: int, cells: tuple[Cell, ...]) -> None:
        self.key = key
        self.cells = cells


def fit(text: str, width: int, justify: Justify = "left") -> str:
    """``text`` in exactly ``width`` terminal cells: padded, or cropped with an ellipsis."""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…" if width > 0 else ""
    if length == width:
        return text
    pad = " " * (width - length)
    return pad + text if justify == "right" else text + pad


class EventTable(ScrollView, can_focus=True):
    """Rows keyed by an integer (the event ``seq``), a row cursor, selection kept by key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "scroll_top", "Top", show=False),
        Binding("ctrl+end", "scroll_bottom", "Bottom", show=False),
        Binding("home", "scroll_home", "Home", show=False),
        Binding("end", "scroll_end", "End", show=False),
    ]

    # The DataTable's component classes and rules, so a theme or app.tcss styles both alike.
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "datatable--cursor",
        "datatable--hover",
        "datatable--fixed",
        "datatable--fixed-cursor",
        "datatable--header",
        "datatable--header-cursor",
        "datatable--header-hover",
        "datatable--odd-row",
        "datatable--even-row",
    }

    DEFAULT_CSS = """
    EventTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        scrollbar-size-horizontal: 0;

        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark {
            & > .datatable--even-row {
                background: $surface-darken-1 40%;
            }
        }
        & > .datatable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .datatable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .datatable--fixed {
            background: $secondary-muted;
            color: $foreground;
        }
        & > .datatable--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .datatable--fixed-cursor {
            background: $block-cursor-blurred-background;
            color: $foreground;
        }
        & > .datatable--header-cursor {
            background: $accent-darken-1;
            color: $foreground;
        }
        & > .datatable--header-hover {
            background: $accent 30%;
        }
        & > .datatable--hover {
            background: $block-hover-background;
        }
    }
    """

    class _RowMessage(Message):
        """A message about one row: the table, the row's index and its key (the event's seq)."""

        def __init__(self, table: EventTable, cursor_row: int, key: int) -> None:
            self.table = table
            self.cursor_row = cursor_row
            self.key = key
            super().__init__()

        @property
        def control(self) -> EventTable:
            return self.table

    class RowHighlighted(_RowMessage):
        """The cursor moved onto a row (posted also when the first row appears under it)."""

    class RowSelected(_RowMessage):
        """``enter`` on the cursor row, or a click on the row already under the cursor."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if not columns:
            raise ValueError("EventTable needs at least one column")
        self.columns: tuple[Column, ...] = tuple(columns)
        # Content widths (padding excluded): the widest label or cell seen; never shrink, so
        # reloading a filter does not make the columns jump (DataTable behaves the same way).
        self._widths: list[int] = [cell_len(c.label) for c in self.columns]
        self._rows: list[_Row] = []
        self._index: dict[int, int] = {}  # key → row index
        self._cursor = 0
        self._strips: dict[int, Strip] = {}  # row index → full-width strip (-1: the header)
        self._epoch: tuple[object, ...] = ()
        self._styles: dict[str, Style] = {}
        self._style_cache: dict[tuple[str, int, str], tuple[Style, Style]] = {}
        self._width = 0  # content width and base style, read once per paint (_check_epoch)
        self._base = Style.null()

    # --- data ----------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Number of rows."""
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        """Index of the row under the cursor (0 when the table is empty)."""
        return self._cursor

    @property
    def keys(self) -> list[int]:
        """Row keys in display order (a copy)."""
        return [r.key for r in self._rows]

    @property
    def selected_key(self) -> int | None:
        """Key of the row under the cursor, or ``None`` when the table is empty."""
        return self._rows[self._cursor].key if self._rows else None

    def get_row_index(self, key: int) -> int:
        """Index of the row with ``key``; ``KeyError`` if there is none."""
        return self._index[key]

    def row_texts(self, index: int) -> tuple[str, ...]:
        """The cell texts of row ``index``."""
        return tuple(c.text for c in self._rows[index].cells)

    def add_rows(self, rows: Iterable[tuple[int, Sequence[Cell]]]) -> int:
        """Append rows ``(key, cells)`` below the existing ones; keys already present are skipped.

        O(rows added): other rows' strips stay cached unless a column had to grow wider.
        Returns how many rows were added.
        """
        ncols = len(self.columns)
        widths = self._widths
        grown = False
        was_empty = not self._rows
        added = 0
        for key, cells in rows:
            if key in self._index:
                continue
            cells = tuple(cells)
            if len(cells) != ncols:
                raise ValueError(f"row {key}: {len(cells)} cells for {ncols} columns")
            for i, cell in enumerate(cells):
                w = cell_len(cell.text)
                if w > widths[i]:
                    widths[i] = w
                    grown = True
            self._index[key] = len(self._rows)
            self._rows.append(_Row(key, cells))
            added += 1
        if not added:
            return 0
        first_new = len(self._rows) - added
        if grown:
            self._strips.clear()
        self._update_virtual_size()
        if grown or first_new <= round(self.scroll_y) + self.size.height:
            self.refresh()  # new rows on screen (or every row re-laid): repaint the table
        # else the rows went below the viewport: only the scrollbar changed, and it repaints itself
        if was_empty:
            # As DataTable: a cursor appears where there was none, say which row it is on.
            self._cursor = 0
            self.post_message(self.RowHighlighted(self, 0, self._rows[0].key))
        return added

    def clear(self) -> None:
        """Remove every row; the cursor and scroll go back to the top (column widths stay)."""
        self._rows.clear()
        self._index.clear()
        self._strips.clear()
        self._cursor = 0
        self._update_virtual_size()
        self.scroll_to(0, 0, animate=False, force=True)
        self.refresh()

    def _update_virtual_size(self) -> None:
        new = Size(self._table_width(), len(self._rows) + 1)
        old = self.virtual_size
        if new == old:
            return
        if new.width == old.width and new.height > old.height > self.size.height > 0:
            # Rows appended below a table that already scrolls: its box cannot change, only the
            # scrollbar. Setting ``virtual_size`` would lay out the whole screen (~15-20 ms at
            # 120x40); this is what Textual's own _size_updated does when no layout is needed.
            self.set_reactive(EventTable.virtual_size, new)
            self._scroll_update(new)
        else:
            self.virtual_size = new

    def _table_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    # --- cursor --------------------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True, animate: bool = False) -> None:
        """Put the cursor on ``row`` (clamped to the table); scroll it into view if ``scroll``."""
        if not self._rows:
            self._cursor = 0
            return
        row = max(0, min(row, len(self._rows) - 1))
        old = self._cursor
        if row != old:
            self._cursor = row
            self._strips.pop(old, None)
            self._strips.pop(row, None)
            self.refresh_line(old + 1)
            self.refresh_line(row + 1)
            self.post_message(self.RowHighlighted(self, row, self._rows[row].key))
        if scroll:
            self.scroll_to_row(row, animate=animate)

    def scroll_to_row(self, row: int, animate: bool = False) -> None:
        """Scroll the least needed so that ``row`` is visible below the header."""
        if not self.size.height:
            self.call_after_refresh(self.scroll_to_row, row, animate)
            return
        visible = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if row < top:
            self.scroll_to(y=row, animate=animate, force=True)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=animate, force=True)

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_down(self) -> None:
        height = self._page_height()
        self.scroll_relative(y=height, animate=False, force=True)
        self.move_cursor(row=self._cursor + height, scroll=False)

    def action_page_up(self) -> None:
        height = self._page_height()
        self.scroll_relative(y=-height, animate=False, force=True)
        self.move_cursor(row=self._cursor - height, scroll=False)

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=len(self._rows) - 1)

    def action_scroll_home(self) -> None:
        self.scroll_x = 0

    def action_scroll_end(self) -> None:
        self.scroll_x = self.max_scroll_x

    def action_select_cursor(self) -> None:
        if self._rows:
            self.post_message(self.RowSelected(self, self._cursor, self._rows[self._cursor].key))

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:  # outside the rows, or on the header
            return
        row = offset.y - 1 + round(self.scroll_y)
        if row >= len(self._rows):
            return
        event.stop()
        if row == self._cursor:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    # --- rendering -----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._epoch = ()  # theme / stylesheet change: recompute the styles and every strip
        self.refresh()

    def _check_epoch(self) -> None:
        # Focus/hover change the component styles (:focus rules), width changes the row fill.
        # ``size`` and ``rich_style`` each cost a compositor lookup / a walk up the DOM, so they
        # are read here once per paint, never per line.
        width = self.size.width
        base = self.rich_style
        self._width, self._base = width, base
        epoch = (self.get_pseudo_class_state(), width, base)
        if epoch != self._epoch:
            self._epoch = epoch
            self._strips.clear()
            self._style_cache.clear()
            component = self.get_component_styles
            cursor = self.get_component_rich_style("datatable--cursor")
            self._styles = {
                "header": component("datatable--header").rich_style,
                "even": component("datatable--even-row").rich_style,
                "odd": component("datatable--odd-row").rich_style,
                "cursor": cursor,
                # DataTable's default cursor_foreground_priority="css": the cursor colour wins.
                "cursor_post": Style.from_color(color=cursor.color),
            }

    def row_strip(self, index: int) -> Strip:
        """The full-width strip of row ``index`` (``-1``: the header), before horizontal scroll."""
        self._check_epoch()
        return self._row_strip(index)

    def _row_strip(self, index: int) -> Strip:
        strip = self._strips.get(index)
        if strip is None:
            strip = self._build_strip(index)
            if len(self._strips) >= STRIP_CACHE_MAX:
                self._strips.clear()
            self._strips[index] = strip
        return strip

    def _cell_styles(self, look: str, column: int, style: str) -> tuple[Style, Style]:
        """(padding style, text style) of a cell; ``look`` is header / even / odd / +cursor.

        Few combinations exist (looks × columns × cell styles), so they are combined once per
        style epoch instead of adding Rich styles for every cell of every row built.
        """
        key = (look, column, style)
        found = self._style_cache.get(key)
        if found is None:
            styles = self._styles
            base, _, cursor = look.partition("+")
            pre = styles[base]
            post = Style.null()
            if cursor:
                pre = pre + styles["cursor"]
                post = styles["cursor_post"]
            # Each cell carries its column as meta, which also keeps a cell one segment:
            # neighbouring cells of one style are not merged into one run (as in DataTable).
            cell = pre + Style.from_meta({"column": column})
            found = (cell + post, cell + Style.parse(style) + post if style else cell + post)
            self._style_cache[key] = found
        return found

    def _build_strip(self, index: int) -> Strip:
        if index < 0:
            look = "header"
            texts: Iterable[tuple[str, str, Justify]] = ((c.label, "", "left") for c in self.columns)
        else:
            row = self._rows[index]
            look = "odd" if index % 2 else "even"
            if index == self._cursor:
                look += "+cursor"
            texts = ((cell.text, cell.style, col.justify) for cell, col in zip(row.cells, self.columns, strict=True))
        segments: list[Segment] = []
        append = segments.append
        cell_styles = self._cell_styles
        for column, ((text, style, justify), width) in enumerate(zip(texts, self._widths, strict=True)):
            pad, text_style = cell_styles(look, column, style)
            if not style:
                append(Segment(f" {fit(text, width, justify)} ", pad))
                continue
            # A styled cell: the padding around its text keeps the row's style, as in Rich.
            shown = fit(text, width, justify) if justify == "right" else fit(text, min(width, cell_len(text)))
            append(Segment(" ", pad))
            append(Segment(shown, text_style))
            append(Segment(" " * (width - cell_len(shown) + 1), pad))
        fill = self._width - self._table_width()
        if fill > 0:
            append(Segment(" " * fill, self._cell_styles(look, -1, "")[0]))
        return Strip(segments)

    def render_lines(self, crop: Region) -> list[Strip]:
        self._check_epoch()  # once per paint, not per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, base = self._width, self._base
        scroll_x, scroll_y = self.scroll_offset
        index = -1 if y == 0 else y - 1 + scroll_y
        if index >= len(self._rows):
            return Strip.blank(width, base)
        strip = self._row_strip(index)
        if scroll_x or strip.cell_length != width:
            strip = strip.crop(scroll_x, scroll_x + width).adjust_cell_length(width, base)
        return strip
