"""Installed copies of the Salt loader modules (``_modules``, ``_states``, ``_runners``)."""
