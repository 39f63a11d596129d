"""The one exception type of the text pipeline."""


class DataError(ValueError):
    """Bad user input to the text pipeline.

    The message is one line that names the problem and the fix; the CLI prints it
    without a traceback and exits with status 2.
    """
