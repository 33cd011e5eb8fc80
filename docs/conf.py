"""Sphinx configuration: the API reference comes from the installed package's numpydoc docstrings.

Build (as CI does, .ci/steps/60-docs.sh):

    pip install '.[docs]'
    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest
"""
import fastsoftmax

project = "fastsoftmax"
author = "the fastsoftmax developers"
copyright = "2026, the fastsoftmax developers"
release = version = fastsoftmax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

# numpydoc: the docstrings' sections, no autosummary tables of members
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
autodoc_default_options = {"members": False}

# Every ">>>" example in the pages and docstrings runs under `-b doctest` (doctest blocks and
# {doctest} directives), with NumPy and fastsoftmax imported.
doctest_global_setup = "import numpy as np\nimport fastsoftmax"
doctest_default_flags = (__import__("doctest").ELLIPSIS | __import__("doctest").NORMALIZE_WHITESPACE
                         | __import__("doctest").DONT_ACCEPT_TRUE_FOR_1)

html_theme = "alabaster"
html_theme_options = {"description": "Fast, accurate softmax for NumPy", "fixed_sidebar": True}
html_static_path = []
