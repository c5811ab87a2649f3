"""ebm family."""
