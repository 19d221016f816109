"""The one exception type for bad user input (config, data, workdir).

Entrypoints catch `UserError`, print its one-line message and exit non-zero, so a user sees
`error: <what is wrong and what to do>` instead of a traceback. Library code raises it for
anything the user can fix; programming errors stay ordinary exceptions.
"""


class UserError(Exception):
    """Bad input a user can fix. The message is one line naming the file/key/value and the fix."""
