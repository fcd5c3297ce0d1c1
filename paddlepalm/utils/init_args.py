"""Remember the arguments a component was constructed with, so a saved model can rebuild it."""
import functools
import inspect
from typing import Any, Dict


def record_init_args(cls) -> None:
    """Wrap ``cls.__init__`` so the outermost call stores its bound arguments in ``_init_args``."""
    original = cls.__dict__.get("__init__")
    if original is None or getattr(original, "_records_args", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        if "_init_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            values: Dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind == inspect.Parameter.VAR_KEYWORD:
                    values.update(value)
                elif kind == inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        values["*args"] = list(value)
                else:
                    values[name] = value
            object.__setattr__(self, "_init_args", values)
        original(self, *args, **kwargs)

    __init__._records_args = True
    cls.__init__ = __init__


def component_type(obj, registry) -> str:
    """Registry name of ``obj``'s class if registered there, else ``module:QualName``."""
    cls = type(obj)
    for name in registry.names():
        if registry.get(name) is cls:
            return name
    return "%s:%s" % (cls.__module__, cls.__qualname__)


def init_params(cls) -> Dict[str, inspect.Parameter]:
    """Named constructor parameters of ``cls`` and of the bases its ``**kwargs`` reach."""
    params: Dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for name, p in inspect.signature(getattr(init, "__wrapped__", init)).parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                params.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(getattr(init, "__wrapped__", init))
                   .parameters.values()):
            break
    return params
