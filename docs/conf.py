"""
Sphinx configuration of nbecho's documentation.

Build: C{sphinx-build -W --keep-going -n -b html docs docs/_build/html}, or
C{sh .ci/docs}, which also checks every link inside the tree.  Nothing is
fetched from the network.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nbecho

project = "nbecho"
author = "the nbecho authors"
copyright = "the nbecho authors, MIT licence"
release = nbecho.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "epytext",
    "optiontable",
]

root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["nbecho.css"]
html_theme = "alabaster"
# Commands and messages are quoted as typed: '' stays two apostrophes.
smartquotes = False
html_title = f"nbecho {release}"

# Docstrings are Twisted-style epytext: the local "epytext" extension turns
# them into reStructuredText and links names outside nbecho without network.
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
add_module_names = False
nitpicky = True
# An inherited docstring (Twisted's, mostly) names things in its own module's
# terms: document what nbecho itself says.
autodoc_inherit_docstrings = False
# The docs extra installs Sphinx alone: the optional features' packages (the
# metrics and tls extras) are stood in for, so that every module is
# documented from a build with only the docs extra.
autodoc_mock_imports = ["prometheus_client", "OpenSSL", "service_identity"]
