"""The plugin's one-line errors and its exit codes, stable so scripts can rely on them.

0  done (``diff``: nothing changes)
1  the command failed: not found, refused by the API server, already resolved, a bad value
   (``diff``: something changes, like ``kubectl diff``)
2  usage: unknown verb or flag, missing or malformed argument
3  no cluster: the kubeconfig cannot be loaded or the API server cannot be reached
4  ``diff`` only: it could not compare (any failure that is 1 elsewhere)
"""

OK = 0
FAILED = 1
CHANGED = 1
USAGE = 2
UNREACHABLE = 3
DIFF_FAILED = 4


class PluginError(Exception):
    """A problem worth one line to the user, with the exit code it ends with."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code
