"""
Read nbecho's Twisted-style epytext docstrings in Sphinx autodoc, offline.

nbecho writes its docstrings as Twisted does (C{code}, L{link}, I{italic},
B{bold}, U{text<url>}, @ivar/@param/@return fields).  This extension turns
them into reStructuredText as autodoc reads them, resolving each L{name}
the way pydoctor does: in the documented object's own scope, then its
module's namespace (imports included), then as a fully qualified name.

Names inside nbecho must resolve to documented objects (with C{-n} and
C{-W} a dangling one fails the build).  Names in Twisted and the standard
library become links to their published API documentation, built from the
name alone, so the build never touches the network; names in other
third-party packages are shown as code.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import re
import sys
from types import ModuleType
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

LOG = logging.getLogger(__name__)

TWISTED_API = "https://docs.twistedmatrix.com/en/stable/api/"
PYTHON_DOCS = "https://docs.python.org/3/library/"

#: Third-party packages whose names are shown as code rather than linked.
UNLINKED = (
    "attr",
    "attrs",
    "zope",
    "prometheus_client",
    "hypothesis",
    "OpenSSL",
    "service_identity",
    "matplotlib",
    "uvloop",
    "typing_extensions",
)

_FIELDS = {
    "ivar": "ivar",
    "cvar": "cvar",
    "var": "var",
    "param": "param",
    "type": "type",
    "return": "return",
    "returns": "return",
    "rtype": "rtype",
    "raise": "raises",
    "raises": "raises",
    "keyword": "keyword",
    "see": "seealso",
    "note": "note",
    "since": "since",
}
_FIELD = re.compile(r"^(\s*)@(\w+)(\s+[^:]+)?:(.*)$")


def _matching(text: str, start: int) -> int:
    """
    The index of the brace closing the one at C{start}: epytext braces nest.
    """
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unbalanced braces in docstring: {text[start : start + 40]!r}")


def _isWord(char: str) -> bool:
    return char.isalnum() or char == "_"


def _inline(text: str, context: tuple[ModuleType | None, Any, list[Any]]) -> str:
    """
    Convert the inline markup of one docstring to reStructuredText.
    """
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if (
            char in "CLIBUX"
            and text.startswith("{", index + 1)
            and (index == 0 or not _isWord(text[index - 1]))
        ):
            end = _matching(text, index + 1)
            inner = text[index + 2 : end]
            if char == "C":
                piece = _literal(inner)
            elif char == "L":
                piece = _link(inner, context)
            elif char == "I":
                piece = f"*{_inline(inner, context)}*"
            elif char == "B":
                piece = f"**{_inline(inner, context)}**"
            elif char == "U":
                match = re.fullmatch(r"(.*?)\s*<(.+)>", inner, re.S)
                piece = (
                    f"`{match.group(1)} <{match.group(2)}>`__"
                    if match
                    else f"`<{inner}>`__"
                )
            else:  # X{term}: an index term, shown as it is
                piece = _inline(inner, context)
            # Inline markup must be set off from surrounding word characters.
            if (
                out
                and out[-1]
                and not out[-1][-1].isspace()
                and out[-1][-1] not in "([{'\"-/"
            ):
                piece = "\\ " + piece
            if end + 1 < len(text) and _isWord(text[end + 1]):
                piece += "\\ "
            out.append(piece)
            index = end + 1
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _literal(inner: str) -> str:
    inner = " ".join(inner.split())
    if "``" in inner or inner != inner.strip() or not inner:
        return f":code:`{inner.replace('`', chr(92) + '`')}`"
    return f"``{inner}``"


def _link(inner: str, context: tuple[ModuleType | None, Any, list[Any]]) -> str:
    match = re.fullmatch(r"(.*?)\s*<(.+)>", inner, re.S)
    label, name = (match.group(1), match.group(2)) if match else (inner, inner)
    label = " ".join(label.split())
    target = _resolve(name.strip(), context)
    if target in {"None", "True", "False"}:
        return f"``{label}``"
    return f":py:obj:`{label} <{target}>`"


def _canonical(value: Any, fallback: str) -> str:
    if inspect.ismodule(value):
        return value.__name__
    module = getattr(value, "__module__", None)
    # zope.interface interfaces have a __name__ but no __qualname__.
    qualname = getattr(value, "__qualname__", getattr(value, "__name__", None))
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    return fallback


def _walk(value: Any, parts: list[str], prefix: str) -> str | None:
    """
    Follow C{parts} from C{value}, named C{prefix}; the full name, or C{None}.
    """
    name = prefix
    for part in parts:
        if inspect.ismodule(value) and not hasattr(value, part):
            try:
                value = importlib.import_module(f"{value.__name__}.{part}")
            except ImportError:
                return None
            name = value.__name__
            continue
        if not hasattr(value, part) and part not in getattr(
            value, "__annotations__", {}
        ):
            return None
        owner = name
        value = getattr(value, part, None)
        name = _canonical(value, f"{owner}.{part}")
    return name


def _resolve(name: str, context: tuple[ModuleType | None, Any, list[Any]]) -> str:
    module, _obj, scopes = context
    first, *rest = name.split(".")
    for scope in scopes:
        if hasattr(scope, first) or first in getattr(scope, "__annotations__", {}):
            found = _walk(scope, [first, *rest], _canonical(scope, ""))
            if found:
                return found
    if module is not None and hasattr(module, first):
        found = _walk(module, [first, *rest], module.__name__)
        if found:
            return found
    if hasattr(builtins, first) and not rest:
        return first
    try:
        root = importlib.import_module(first)
    except ImportError:
        return _elsewhere(first, rest) or name
    return _walk(root, rest, first) or name


def _elsewhere(first: str, rest: list[str]) -> str | None:
    """
    Like pydoctor, accept a name defined in exactly one nbecho module even
    where the docstring's module does not import it.
    """
    found = set()
    for moduleName, module in list(sys.modules.items()):
        if moduleName.split(".")[0] == "nbecho" and module is not None:
            value = vars(module).get(first)
            if value is not None and _canonical(value, "").startswith("nbecho"):
                found.add(_walk(module, [first, *rest], moduleName))
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _context(
    what: str, name: str, obj: Any
) -> tuple[ModuleType | None, Any, list[Any]]:
    moduleName = name if what == "module" else getattr(obj, "__module__", None)
    module = sys.modules.get(moduleName) if isinstance(moduleName, str) else None
    if module is None:
        # Attributes have no __module__: find the longest module prefix.
        parts = name.split(".")
        for length in range(len(parts), 0, -1):
            module = sys.modules.get(".".join(parts[:length]))
            if module is not None:
                break
    scopes: list[Any] = []
    if inspect.isclass(obj):
        scopes.append(obj)
    elif module is not None and what in {"method", "attribute", "property"}:
        value: Any = module
        for part in name[len(module.__name__) + 1 :].split(".")[:-1]:
            value = getattr(value, part, None)
        if inspect.isclass(value):
            scopes.append(value)
    return module, obj, scopes


def processDocstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """
    Rewrite one docstring, given as lines, from epytext to reStructuredText.
    """
    context = _context(what, name, obj)
    converted: list[str] = []
    for line in lines:
        field = _FIELD.match(line)
        if field and field.group(2) in _FIELDS:
            indent, tag, argument, body = field.groups()
            role = _FIELDS[tag]
            argument = (argument or "").strip()
            line = f"{indent}:{role}{' ' + argument if argument else ''}:{body}"
        converted.append(line)
    text = _inline("\n".join(converted), context)
    lines[:] = text.split("\n")


def _externalURL(target: str) -> str | None:
    first = target.split(".")[0]
    if first == "twisted":
        parts = _public(target.split("."))
        for length in range(len(parts), 0, -1):
            try:
                value: Any = importlib.import_module(".".join(parts[:length]))
            except ImportError:
                continue
            rest = parts[length:]
            page = ".".join(parts[:length])
            for part in rest:
                value = getattr(value, part, None)
                if inspect.isclass(value):
                    page += "." + part
                else:
                    return f"{TWISTED_API}{page}.html#{part}"
            return f"{TWISTED_API}{page}.html"
        return None
    if hasattr(builtins, target):
        value = getattr(builtins, target)
        if target in {"None", "True", "False", "NotImplemented", "Ellipsis"}:
            return f"{PYTHON_DOCS}constants.html#{target}"
        if inspect.isclass(value) and issubclass(value, BaseException):
            return f"{PYTHON_DOCS}exceptions.html#{target}"
        if inspect.isclass(value):
            return f"{PYTHON_DOCS}stdtypes.html#{target}"
        return f"{PYTHON_DOCS}functions.html#{target}"
    if first in sys.stdlib_module_names:
        parts = target.split(".")
        for length in range(len(parts), 0, -1):
            moduleName = ".".join(parts[:length])
            try:
                importlib.import_module(moduleName)
            except ImportError:
                continue
            return f"{PYTHON_DOCS}{moduleName}.html#{target}"
    return None


def _public(parts: list[str]) -> list[str]:
    """
    Twisted's API documentation shows a name from a private module (such as
    C{twisted.logger._interfaces}) under the public module that exports it.
    """
    for index in range(len(parts) - 1, 0, -1):
        if parts[index].startswith("_") and index + 1 < len(parts):
            parent = ".".join(parts[:index])
            module = sys.modules.get(parent)
            if module is not None and hasattr(module, parts[index + 1]):
                return _public(parts[:index] + parts[index + 1 :])
    return parts


def missingReference(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """
    Link names outside nbecho to their published documentation, offline.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if target.startswith("nbecho") or target.startswith("twisted.plugins.nbecho"):
        return None  # must resolve inside these docs: let Sphinx warn
    url = _externalURL(target)
    if url is not None:
        reference = nodes.reference("", "", internal=False, refuri=url, reftitle=target)
        reference.append(contnode)
        return reference
    if target.split(".")[0] in UNLINKED:
        return contnode
    return None


_ATTRS_DEFAULT = re.compile(r"attr_dict\['(\w+)'\]\.default|\b(\w+)=NOTHING\b")


def _attrsDefault(cls: Any, name: str) -> str:
    """
    How the default of attrs field C{name} of C{cls} reads in source code:
    its repr, or C{list()} for C{attrs.Factory(list)}.  A factory that takes
    the instance shows the value it gives when every other field keeps its
    default.
    """
    import attr

    default = attr.fields_dict(cls)[name].default
    if not isinstance(default, attr.Factory):  # type: ignore[arg-type]
        return repr(default)
    if default.takes_self:  # type: ignore[attr-defined]
        try:
            return repr(getattr(cls(), name))
        except (TypeError, ValueError):  # other fields have no default
            pass
    factory = default.factory  # type: ignore[attr-defined]
    return f"{getattr(factory, '__qualname__', repr(factory))}()"


def processSignature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    returnAnnotation: str | None,
) -> tuple[str | None, str | None] | None:
    """
    Show an attrs class's real defaults: with C{autodoc_preserve_defaults},
    the C{__init__} attrs writes would show C{attr_dict['name'].default},
    and a factory's default C{NOTHING}.
    """
    import attr

    if not signature or not inspect.isclass(obj) or not attr.has(obj):
        return None

    def real(match: re.Match[str]) -> str:
        if match.group(1):
            return _attrsDefault(obj, match.group(1))
        return f"{match.group(2)}={_attrsDefault(obj, match.group(2))}"

    return _ATTRS_DEFAULT.sub(real, signature), returnAnnotation


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", processDocstring)
    app.connect("autodoc-process-signature", processSignature)
    app.connect("missing-reference", missingReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
