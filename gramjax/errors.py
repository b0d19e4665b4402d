"""Errors that reach the user as one clear line (no traceback)."""


class UserError(Exception):
  """A problem the user can fix: bad config key, missing data, bad file."""
