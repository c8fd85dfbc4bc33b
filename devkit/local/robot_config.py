"""The robot config viam-server reads (JSON, or the YAML equivalent), with the line of every key kept, so that each
problem can be reported as ``file:line: services[1].attributes.mlmodel_name: what is wrong``."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

ConfigPath = tuple[str | int, ...]  # a location in the config: ("services", 1, "attributes", "mlmodel_name")
_NAME: Final = re.compile(r"^[a-zA-Z0-9][-\w]*$")
_TRIPLET: Final = re.compile(r"^[\w-]+:[\w-]+:[\w-]+$")
_WS: Final = re.compile(r"\s*")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def format_path(path: ConfigPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class ConfigProblem(Exception):
    """Something wrong in the config, located by file, line and path."""

    def __init__(self, source: str, line: int | None, path: ConfigPath, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {format_path(path) + ': ' if path else ''}{message}")
        self.line = line
        self.path = path


class ConfigProblems(ConfigProblem):
    """Several problems found in one pass, one line each (``problems`` in the order of the file)."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        Exception.__init__(self, "\n".join(str(p) for p in problems))
        self.problems = problems
        self.line = problems[0].line
        self.path = problems[0].path


def raise_all(problems: list[ConfigProblem]) -> None:
    """Raise the one problem, or all of them together; nothing when the list is empty."""
    flat = [q for p in problems for q in (p.problems if isinstance(p, ConfigProblems) else [p])]
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise ConfigProblems(sorted(flat, key=lambda p: p.line or 0))


@dataclass(frozen=True, slots=True)
class ModuleEntry:
    name: str
    executable_path: str
    log_level: str
    env: Mapping[str, str]
    path: ConfigPath
    kind: str = "local"  # "local" or "registry" (as the Viam app writes them)
    module_id: str = ""  # registry modules: "namespace:name"
    version: str = ""


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    """A component or service of the config."""

    name: str
    api: str
    model: str
    attributes: Mapping[str, Any]
    depends_on: tuple[str, ...]
    log_level: str
    path: ConfigPath  # ("services", 1)

    @property
    def full_name(self) -> str:
        return f"{self.api}/{self.name}"


@dataclass(frozen=True, slots=True)
class RobotConfig:
    source: Path
    modules: tuple[ModuleEntry, ...]
    resources: tuple[ResourceEntry, ...]
    lines: Mapping[ConfigPath, int] = field(repr=False)
    packages: Mapping[str, Path] = field(default_factory=dict)  # ${packages...} names resolved, and where to

    def line(self, path: ConfigPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: ConfigPath, message: str) -> ConfigProblem:
        return ConfigProblem(str(self.source), self.line(path), path, message)

    def by_name(self, name: str) -> list[ResourceEntry]:
        return [r for r in self.resources if r.name == name or r.full_name == name]


def load(path: Path, packages: Path | None = None) -> RobotConfig:
    """Read and check a robot config. ``${packages.NAME}`` and ``${packages.ml_model.NAME}`` in attributes become
    ``packages/NAME`` (viam-server puts a package's files there; here ``--packages DIR`` stands for that folder).

    Raises:
        ConfigProblem: Naming the line; ConfigProblems when there is more than one (all found in one pass).
    """
    config, problems = load_collecting(path, packages)
    raise_all(problems)
    return config


def load_collecting(path: Path, packages: Path | None = None) -> tuple[RobotConfig, list[ConfigProblem]]:
    """As :func:`load`, but the problems are returned with what could be read (entries with a problem in a required
    field left out), so that later checks (cameras, the module's ValidateConfig) can add theirs to the same report.

    Raises:
        ConfigProblem: The file cannot be read or parsed at all.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigProblem(str(path), None, (), f"cannot read the config: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        data, lines = _parse_yaml(text, str(path))
    else:
        data, lines = _parse_json(text, str(path))
    checker = _Checker(path, lines, packages)
    return checker.robot(data), checker.problems


def _parse_json(text: str, source: str) -> tuple[Any, dict[ConfigPath, int]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigProblem(f"{source}:{exc.lineno}:{exc.colno}", None, (), f"invalid JSON: {exc.msg}") from None
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    lines: dict[ConfigPath, int] = {}

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def value(pos: int, path: ConfigPath) -> int:
        """Record where each value starts; returns the position after it (the text is known to be valid JSON)."""
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        lines.setdefault(path, line_at(pos))
        if text[pos] in "{[":
            closing, index = ("}" if text[pos] == "{" else "]"), 0
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            while text[pos] != closing:
                if closing == "}":
                    key, after = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                    lines[(*path, key)] = line_at(pos)
                    pos = value(_WS.match(text, after).end() + 1, (*path, key))  # type: ignore[union-attr]
                else:
                    pos = value(pos, (*path, index))
                    index += 1
                pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
                if text[pos] == ",":
                    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            return pos + 1
        if text[pos] == '"':
            return int(json.decoder.scanstring(text, pos + 1)[1])  # type: ignore[attr-defined]
        match = _NUMBER.match(text, pos)
        if match:
            return match.end()
        return pos + next(len(word) for word in ("true", "false", "null") if text.startswith(word, pos))

    value(0, ())
    return data, lines


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[ConfigPath, int]]:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigProblem(where, None, (), f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigProblem(source, None, (), f"invalid YAML: {exc}") from None
    lines: dict[ConfigPath, int] = {}

    def walk(node: yaml.Node | None, path: ConfigPath) -> None:
        if node is None:
            return
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, child in node.value:
                lines[(*path, str(key.value))] = key.start_mark.line + 1
                walk(child, (*path, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                walk(child, (*path, index))

    walk(root, ())
    return data, lines


_PLACEHOLDER: Final = re.compile(r"\$\{packages\.(?:([A-Za-z_]+)\.)?([^.}]+)\}")


class _Checker:
    """Turns parsed data into a RobotConfig, checking the shape of everything the runner uses. Problems are
    collected (an entry with a problem in a required field is left out) and raised together at the end."""

    def __init__(self, source: Path, lines: dict[ConfigPath, int], packages: Path | None = None) -> None:
        self.source = source
        self.lines = lines
        self.packages_dir = packages
        self.packages: dict[str, Path] = {}
        self.problems: list[ConfigProblem] = []

    def fail(self, path: ConfigPath, message: str) -> ConfigProblem:
        return RobotConfig(self.source, (), (), self.lines).problem(path, message)

    def note(self, path: ConfigPath, message: str) -> None:
        """A problem that does not stop the entry from being read."""
        self.problems.append(self.fail(path, message))

    def get(self, obj: Mapping[str, Any], path: ConfigPath, key: str, kind: type, what: str, *, required: bool = False,
            default: Any = None) -> Any:
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(path, f"{key!r} is required ({what})")
            return default
        if not isinstance(value, kind) or (kind is str and required and not value):
            if required:
                raise self.fail((*path, key), f"must be {what}, got {value!r}")
            self.note((*path, key), f"must be {what}, got {value!r}")
            return default
        return value

    def resolve(self, value: Any, path: ConfigPath) -> Any:
        """``value`` with every ``${packages...}`` placeholder in its strings replaced by the package's folder."""
        if isinstance(value, Mapping):
            return {k: self.resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${packages." not in value:
            return value

        def folder(match: re.Match[str]) -> str:
            name = match[2]
            if self.packages_dir is None:
                self.note(path, f"{match[0]} needs the package's files: pass --packages DIR, with them in DIR/{name}/")
                return match[0]
            where = self.packages_dir / name
            if not where.is_dir():
                self.note(path, f"{match[0]}: no folder {where} (--packages DIR must hold DIR/{name}/ with the "
                                "package's files)")
            self.packages[name] = where.resolve()
            return str(where.resolve())

        return _PLACEHOLDER.sub(folder, value)

    def items(self, data: Mapping[str, Any], section: str) -> list[tuple[ConfigPath, Mapping[str, Any]]]:
        entries = self.get(data, (), section, list, "a list")
        result: list[tuple[ConfigPath, Mapping[str, Any]]] = []
        for index, entry in enumerate(entries or []):
            if not isinstance(entry, Mapping):
                self.note((section, index), f"must be an object, got {entry!r}")
                continue
            result.append(((section, index), entry))
        return result

    def robot(self, data: Any) -> RobotConfig:
        if not isinstance(data, Mapping):
            raise self.fail((), "the config must be an object with 'modules', 'components' and 'services'")
        modules: list[ModuleEntry] = []
        resources: list[ResourceEntry] = []
        for section in ("modules", "components", "services"):
            try:
                entries = self.items(data, section)
            except ConfigProblem as exc:
                self.problems.append(exc)
                continue
            for path, entry in entries:
                try:
                    if section == "modules":
                        modules.append(self.module(path, entry))
                    else:
                        resources.append(self.resource(path, entry))
                except ConfigProblem as exc:
                    self.problems.append(exc)
        seen: dict[str, ConfigPath] = {}
        for r in resources:
            if r.full_name in seen:
                self.note((*r.path, "name"), f"{r.name!r} is also the name of {format_path(seen[r.full_name])}")
            seen[r.full_name] = r.path
        return RobotConfig(self.source, tuple(modules), tuple(resources), self.lines, dict(self.packages))

    def module(self, path: ConfigPath, entry: Mapping[str, Any]) -> ModuleEntry:
        name = self.get(entry, path, "name", str, "a module name", required=True)
        if not _NAME.match(name) or name == "parent":
            raise self.fail((*path, "name"), f"{name!r} is not a valid module name (letters, digits, '-', '_')")
        env = self.get(entry, path, "env", Mapping, "an object of strings", default={})
        for key, value in env.items():
            if not isinstance(value, str):
                raise self.fail((*path, "env", key), f"must be a string, got {value!r}")
        kind = self.get(entry, path, "type", str, "'local' or 'registry'", default="local")
        if kind not in ("local", "registry"):
            self.note((*path, "type"), f"must be 'local' or 'registry', got {kind!r}")
        executable = self.get(entry, path, "executable_path", str, "a path", default="")
        module_id = self.get(entry, path, "module_id", str, "a module id like 'namespace:name'", default="")
        if kind == "registry" and not module_id:
            self.note(path, "'module_id' is required for a registry module ('namespace:name')")
        return ModuleEntry(name=name, executable_path=executable,
                           log_level=self.get(entry, path, "log_level", str, "a log level", default=""),
                           env=dict(env), path=path, kind=kind, module_id=module_id,
                           version=str(self.get(entry, path, "version", str, "a version", default="")))

    def resource(self, path: ConfigPath, entry: Mapping[str, Any]) -> ResourceEntry:
        kind = "component" if path[0] == "components" else "service"
        name = self.get(entry, path, "name", str, "a resource name", required=True)
        if not _NAME.match(name):
            raise self.fail((*path, "name"), f"{name!r} is not a valid name (letters, digits, '-', '_')")
        api = self.get(entry, path, "api", str, "an API triplet like 'rdk:service:vision'", default="")
        if not api:  # older configs: "type" (+ "namespace")
            subtype = self.get(entry, path, "type", str, f"the {kind} type, e.g. 'camera'", required=True)
            api = f"{self.get(entry, path, 'namespace', str, 'a namespace', default='rdk')}:{kind}:{subtype}"
        elif not _TRIPLET.match(api):
            raise self.fail((*path, "api"), f"{api!r} is not an API triplet like 'rdk:{kind}:...'")
        model = self.get(entry, path, "model", str, "a model triplet like 'acme:vision:mlmodel'", required=True)
        if ":" not in model:
            model = f"rdk:builtin:{model}"
        elif not _TRIPLET.match(model):
            raise self.fail((*path, "model"), f"{model!r} is not a model triplet like 'acme:vision:mlmodel'")
        depends_on = self.get(entry, path, "depends_on", list, "a list of resource names", default=[])
        for index, dep in enumerate(depends_on):
            if not isinstance(dep, str):
                self.note((*path, "depends_on", index), f"must be a resource name, got {dep!r}")
        log_config = self.get(entry, path, "log_configuration", Mapping, "an object", default={})
        attributes = self.get(entry, path, "attributes", Mapping, "an object", default={})
        return ResourceEntry(
            name=name, api=api, model=model, path=path, depends_on=tuple(d for d in depends_on if isinstance(d, str)),
            attributes=self.resolve(dict(attributes), (*path, "attributes")),
            log_level=self.get(log_config, (*path, "log_configuration"), "level", str, "a log level", default=""))
