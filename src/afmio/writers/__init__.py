"""Streaming exporters: one module per format, behind the helpers of ``_common``.

Writers take xarray objects and never import readers. Each format module exposes
``write(path, content, *, overwrite, progress, **options) -> Path`` where ``content`` is a
:class:`~afmio.writers._common.BundleContent`.
"""
