"""Registries: components are built by short name (``'classify'``) or by dotted import path.

A user's own class joins the same way as the built-ins: ``@READERS.register('my_reader')`` or
a ``'mypkg.readers:MyReader'`` path in a config.
"""
import difflib
import importlib
from typing import Callable, Dict, Generic, List, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class mapping for one component kind (readers, heads, backbones, ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str, obj: Optional[T] = None):
        """Register ``obj`` under ``name``; usable as a decorator."""
        def add(target):
            if name in self._entries and self._entries[name] is not target:
                raise ValueError("%s %r is already registered" % (self.kind, name))
            self._entries[name] = target
            return target
        return add(obj) if obj is not None else add

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> T:
        """Look up a registered name, or import ``package.module:Class`` / ``package.module.Class``."""
        if name in self._entries:
            return self._entries[name]
        if ":" in name or "." in name:
            return import_object(name)
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise KeyError("unknown %s %r%s; known: %s, or a dotted path 'pkg.module:Class'"
                       % (self.kind, name, hint, ", ".join(self.names())))


def import_object(path: str):
    """Import ``pkg.mod:Name``, ``pkg.mod.Name`` or ``path/to/file.py:Name`` (a module file)."""
    module_name, _, attr = path.rpartition(":") if ":" in path else path.rpartition(".")
    try:
        if module_name.endswith(".py"):
            module = _import_file(module_name)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise KeyError("cannot import %r: %s" % (path, e)) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise KeyError("module %r has no attribute %r" % (module_name, attr)) from None


def _import_file(filename: str):
    """Import a module file under its file name (``my_readers.py`` -> ``my_readers``), once."""
    import importlib.util
    import os
    import sys

    filename = os.path.abspath(filename)
    if not os.path.isfile(filename):
        raise ImportError("no such file: %s" % filename)
    name = os.path.splitext(os.path.basename(filename))[0]
    loaded = sys.modules.get(name)
    if loaded is not None:
        if os.path.abspath(getattr(loaded, "__file__", "") or "") == filename:
            return loaded
        if _FILE_MODULES.get(name) is not loaded:  # an ordinary module, not a file we loaded
            raise ImportError("a different module named %r is already imported (%s); rename %s"
                              % (name, getattr(loaded, "__file__", "built-in"), filename))
    elif name not in _FILE_MODULES:
        try:
            installed = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            installed = None
        if installed is not None and os.path.abspath(installed.origin or "") != filename:
            raise ImportError("%s would hide the installed module %r (%s); rename the file"
                              % (filename, name, installed.origin))
    spec = importlib.util.spec_from_file_location(name, filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes pickle and save under this module name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _FILE_MODULES[name] = module
    return module


_FILE_MODULES: Dict[str, object] = {}  # module files imported by path (the newest of a name wins)


READERS: Registry = Registry("reader")
HEADS: Registry = Registry("head")
BACKBONES: Registry = Registry("backbone")
OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("lr scheduler")
SAMPLERS: Registry = Registry("sampler")
CALLBACKS: Registry = Registry("callback")
BALANCERS: Registry = Registry("balancer")
