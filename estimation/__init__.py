"""Estimates behind the alerts: the true stance mix of a window and its intervals."""
