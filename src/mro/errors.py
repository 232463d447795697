"""The one exception type users see.

Every check on user input (configs, files, dataset rows, model names, answers) raises
``MroError`` with a single line naming the problem; the CLI prints it without a traceback.
"""


class MroError(Exception):
    """A user-facing error whose message is one line and names what is wrong."""
