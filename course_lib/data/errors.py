"""Bad or missing data, said plainly: the one exception type of ``course_lib.data``.

Also :func:`listed`, which every message about bad input uses to name what is wrong.
"""


class DataError(ValueError):
    """A data set, a file in it, or a download is missing, malformed or incomplete.

    The message always names what is wrong: the file, the missing columns, the bad values.
    """


def listed(items, n: int = 5) -> str:
    """The first ``n`` items, comma-separated, and how many more there are."""
    items = list(items)
    more = f", … ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more
