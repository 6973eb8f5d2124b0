"""The one exception type the plugin's commands turn into a one-line message (``error: ...``, exit code 2)."""


class InterpretError(Exception):
    """Bad input or an unsupported model; the message names the fix."""
