"""The one exception type of the text pipeline."""
from ..errors import InputError


class DataError(InputError):
    """Bad user input to the text pipeline.

    The message is one line that names the problem and the fix; the CLI prints it
    without a traceback and exits with status 2.
    """
