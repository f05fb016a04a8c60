"""The book's Sphinx extensions, listed in ``_config.yml`` under ``sphinx: extra_extensions``.

* :mod:`~coursetools.sphinxext.labkit_links`: the ``{labkit-used}`` directive, which links every
  labkit function a chapter's notebooks use to its API entry and to its source;
* :mod:`~coursetools.sphinxext.offline_mathjax`: MathJax served by the site itself;
* :mod:`~coursetools.sphinxext.site_fixes`: two fixes for console errors of the theme stack.
"""
