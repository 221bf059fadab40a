"""The one exception type of ``course_lib.data``: bad or missing data, said plainly."""


class DataError(ValueError):
    """A data set, a file in it, or a download is missing, malformed or incomplete.

    The message always names what is wrong: the file, the missing columns, the bad values.
    """
