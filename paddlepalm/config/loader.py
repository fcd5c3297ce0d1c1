"""Reading a config: YAML that remembers where every key was written, and ``--set`` overrides.

A :class:`Config` holds the data as written (plain dicts, lists and scalars), the file it came
from and, for every key path, its origin: ``config.yaml:12`` or ``--set optimizer.lr=3e-5``.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from paddlepalm.errors import ConfigError

KeyPath = Tuple[Any, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``3e-5`` (YAML 1.1 wants ``3.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789."))


@dataclass
class Problem:
    """One thing wrong with a config: where it is, which key, and what."""

    origin: str  # 'file:line', 'file' or '--set key=value'
    key: str  # dotted key path, '' for the whole file
    message: str

    def __str__(self):
        return "%s: %s%s" % (self.origin, self.key + ": " if self.key else "", self.message)


def config_error(problems: Sequence[Problem], source: Optional[str] = None) -> ConfigError:
    """One :class:`ConfigError` listing every problem (its ``problems`` attribute keeps them)."""
    head = "%d problem%s in %s" % (len(problems), "" if len(problems) == 1 else "s", source or "the config")
    error = ConfigError(head + ":\n" + "\n".join("  " + str(p) for p in problems))
    error.problems = list(problems)
    return error


@dataclass
class Config:
    """A loaded config: the data as written, the file, and where each key path was set."""

    data: Dict[str, Any]
    path: Optional[str] = None
    origins: Dict[KeyPath, str] = field(default_factory=dict)
    problems: List[Problem] = field(default_factory=list)  # found while loading (duplicate keys)
    settings: Optional[Dict[str, Any]] = None  # the resolved settings, once validated

    @property
    def base_dir(self) -> str:
        """The folder relative input paths are resolved against."""
        return os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()

    @property
    def source(self) -> str:
        return self.path or "<config>"

    def where(self, key_path: Sequence[Any]) -> str:
        """Origin of ``key_path`` (or of its nearest parent that has one)."""
        path = tuple(key_path)
        while path:
            if path in self.origins:
                return self.origins[path]
            path = path[:-1]
        return self.source

    def problem(self, key_path: Sequence[Any], message: str) -> Problem:
        return Problem(self.where(key_path), ".".join(str(k) for k in key_path), message)

    def get(self, key_path: Sequence[Any], default: Any = None) -> Any:
        node = self.data
        for k in key_path:
            if not isinstance(node, dict) or k not in node:
                return default
            node = node[k]
        return node


# ----------------------------------------------------------------------------- YAML -> Config
def _construct(node: yaml.Node, path: KeyPath, source: str, origins: Dict[KeyPath, str],
               problems: List[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: Dict[Any, Any] = {}
        first_line: Dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, path + ("<key>",), source, {}, problems)
            line = key_node.start_mark.line + 1
            child = path + (key,)
            try:
                duplicate = key in out
            except TypeError:  # an unhashable key such as a list
                problems.append(Problem("%s:%d" % (source, line), ".".join(map(str, path)),
                                        "a key must be a plain value, got %s" % type(key).__name__))
                continue
            if duplicate:
                problems.append(Problem("%s:%d" % (source, line), ".".join(map(str, child)),
                                        "duplicate key %r (first at line %d)" % (key, first_line[key])))
            first_line.setdefault(key, line)
            origins[child] = "%s:%d" % (source, line)
            out[key] = _construct(value_node, child, source, origins, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            origins[path + (i,)] = "%s:%d" % (source, item.start_mark.line + 1)
            items.append(_construct(item, path + (i,), source, origins, problems))
        return items
    return _Loader("").construct_object(node, deep=True)


def parse_yaml(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a :class:`Config` (syntax errors raise :class:`ConfigError`)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = "%s:%d" % (source, mark.line + 1) if mark else source
        raise config_error([Problem(where, "", "invalid YAML: %s" % (e.problem or e.context))], source) from None
    except yaml.YAMLError as e:
        raise config_error([Problem(source, "", "invalid YAML: %s" % e)], source) from None
    origins: Dict[KeyPath, str] = {}
    problems: List[Problem] = []
    data = {} if node is None else _construct(node, (), source, origins, problems)
    if not isinstance(data, dict):
        raise config_error([Problem(source, "", "a config must be a mapping of keys, got a %s"
                                    % type(data).__name__)], source)
    return Config(data, None if source == "<config>" else source, origins, problems)


def load_yaml(path: str) -> Config:
    """Read a config file (without checking it; see :func:`paddlepalm.config.load_config`)."""
    if not os.path.isfile(path):
        raise config_error([Problem(str(path), "", "config file not found")], str(path))
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise config_error([Problem("%s:%d" % (path, line), "", "not valid UTF-8 (byte 0x%02x at column %d); "
                                    "re-save the file as UTF-8" % (raw[e.start], column))], str(path)) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return parse_yaml(text, str(path))


# ----------------------------------------------------------------------------- --set overrides
def parse_value(text: str) -> Any:
    """A ``--set`` value read as YAML (``3e-5`` -> float, ``true``, ``null``, ``[a, b]``...)."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError:
        return text


def apply_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """Apply ``KEY=VALUE`` overrides in place; a malformed one raises :class:`ConfigError`.

    Missing sections are created. A task must already exist, and a value can only be set inside
    a mapping (a reader or head given by name becomes ``{type: name}``). Unknown keys are left
    to validation, which names the ``--set`` argument.
    """
    from paddlepalm.config.schema import COMPONENT, VALUE, lookup

    problems: List[Problem] = []
    for text in overrides:
        origin = "--set " + text
        dotted, sep, raw = text.partition("=")
        keys = dotted.strip().split(".")
        if not sep or not all(keys):
            problems.append(Problem(origin, "", "expected KEY=VALUE with a dotted KEY, e.g. optimizer.lr=3e-5"))
            continue
        node, path, ok = config.data, (), True
        for depth, k in enumerate(keys[:-1]):
            path += (k,)
            known = lookup(path)
            if k not in node:
                if known is not None and known.kind == VALUE and "mapping" not in known.types:
                    problems.append(Problem(origin, ".".join(path), "is not a mapping: cannot set %r in it"
                                            % keys[depth + 1]))
                    ok = False
                    break
                if path[:1] == ("tasks",) and depth == 1:
                    problems.append(Problem(origin, ".".join(path), "no task %r; tasks: %s"
                                            % (k, ", ".join(map(str, node)) or "none")))
                    ok = False
                    break
                node[k] = {}
                config.origins[path] = origin
            elif isinstance(node[k], str) and getattr(known, "kind", None) == COMPONENT:
                node[k] = {"type": node[k]}
            elif not isinstance(node[k], dict):
                problems.append(Problem(origin, ".".join(path), "is not a mapping: cannot set %r in it"
                                        % keys[depth + 1]))
                ok = False
                break
            node = node[k]
        if ok:
            node[keys[-1]] = parse_value(raw)
            config.origins[path + (keys[-1],)] = origin
            for stale in [p for p in config.origins if p[:len(path) + 1] == path + (keys[-1],)
                          and len(p) > len(path) + 1]:
                del config.origins[stale]
    if problems:
        raise config_error(problems, config.source)
    return config
