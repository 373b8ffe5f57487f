"""Charts the pages draw with Altair where Streamlit's own charts guess badly: time on the x axis as
clock time, values as percentages or milliseconds."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd
import streamlit as st

PALETTE = ["#c8303d", "#1f6fb2", "#2a9d5c", "#e08a1e"]
BAR_COLOR = PALETTE[0]


def label_bars(
    rows: list[dict],
    label: str,
    value: str,
    alt_text: str,
    sort: bool | str = False,
    base_height: int = 60,
    row_height: int = 34,
) -> None:
    """One horizontal bar per row, its `label` beside it and its `value` along the axis (labels, verdicts,
    apps): sized to the rows so that none is squeezed or cut."""
    st.bar_chart(
        rows,
        x=label,
        y=value,
        horizontal=True,
        sort=sort,
        color=BAR_COLOR,
        x_label="",
        y_label=value,
        height=base_height + row_height * max(len(rows), 1),
        alt=alt_text,
    )


def time_chart(
    rows: list[dict], columns: Sequence[str], title: str, value_format: str = ",.1f", height: int = 220, share=False
) -> None:
    """Lines of `columns` over `rows[*]["time"]` (datetimes), one colour each, with a legend when several.
    `share`: values are 0..1, shown as percentages on a fixed 0-100 % axis."""
    frame = pd.DataFrame(rows)
    long = frame.melt(id_vars=["time"], value_vars=list(columns), var_name="series", value_name="value")
    y_scale = alt.Scale(domain=[0, 1]) if share else alt.Scale(zero=True)
    legend_rows = (len(columns) + 1) // 2 if len(columns) > 1 else 0
    chart = (
        alt.Chart(long, height=height + 26 * legend_rows)  # Streamlit fits plot and legend in the height
        .mark_line(point=len(frame) < 30, interpolate="monotone")
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S", labelAngle=0, tickCount=5)),
            y=alt.Y("value:Q", title=title, scale=y_scale, axis=alt.Axis(format=".0%" if share else value_format)),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=list(columns), range=PALETTE[: len(columns)]),
                legend=alt.Legend(orient="bottom", columns=2, labelLimit=240) if len(columns) > 1 else None,
            ),
            tooltip=[
                alt.Tooltip("time:T", format="%H:%M:%S"),
                "series:N",
                alt.Tooltip("value:Q", format=".1%" if share else value_format),
            ],
        )
    )
    st.altair_chart(chart, width="stretch")
