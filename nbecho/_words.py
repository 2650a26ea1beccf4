"""
Counts in words, for log lines and messages a person reads: C{1 message},
C{2 messages}, never C{1 messages}.

Log events keep the bare number under its own key as well (C{messages=1}),
for JSON readers; the text uses the counted form.
"""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """
    C{count} and C{noun}, in the plural unless C{count} is one.

    @param plural: the plural where it is not C{noun + "s"}.
    """
    if count == 1:
        return f"1 {noun}"
    return f"{count} {plural or noun + 's'}"
