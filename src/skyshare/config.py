"""Validated configuration models and YAML presets.

Every config is a pydantic model derived from :class:`StrictModel`: unknown keys are rejected,
values are range-checked, and units are spelled out in field names (``p_max_dbm``,
``isd_m``, ``fc_ghz``). Invalid input raises :class:`~skyshare.errors.ConfigError` whose message
names each bad field, the value given and the allowed range, e.g.::

    catn config is invalid:
      - p_max_dbm = -5.0: must be >= 0 (allowed range: [0, inf))
      - foo: unknown key (allowed keys: seed, n_bs, ...)

Presets are YAML files shipped in ``skyshare/configs/<scenario>/<preset>.yaml``; ``paper`` holds
the seed paper's parameters and ``quick`` a reduced setting that runs in seconds.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from skyshare.errors import ConfigError, UnknownNameError

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of all skyshare configs: frozen, unknown keys forbidden, values validated.

    Numbers are finite unless a field says otherwise (``Field(allow_inf_nan=True)``, e.g. an
    interference limit whose ``inf`` means "no constraint"), and a boolean is not a number
    (pydantic would read ``true`` as 1).
    """

    # ser_json_inf_nan: a dump in JSON mode keeps inf (a field that allows it, or an override
    # dict holding it) as a float instead of pydantic's default null, which would turn "no
    # constraint" into a missing value in a job's parameters and config files
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        allow_inf_nan=False,
        ser_json_inf_nan="constants",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if isinstance(value, bool) and _numeric(field.annotation):
                raise ValueError(f"{name} = {value}: a number is needed, not a boolean")
            if isinstance(value, list | tuple) and _numeric_items(field.annotation):
                if any(isinstance(item, bool) for item in value):
                    raise ValueError(f"{name} = {value}: numbers are needed, not booleans")
        return data

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any], *, what: str | None = None) -> M:
        """Validate ``data``; raise :class:`ConfigError` naming every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise InvalidConfigError.from_validation(cls, err, what=what) from None

    def replace(self: M, **changes: Any) -> M:
        """A validated copy with ``changes`` applied (nested keys as ``a.b=value`` strings)."""
        data = self.model_dump()
        for key, value in changes.items():
            set_dotted(data, key, value)
        return type(self).from_dict(data)


def _numeric_items(annotation: Any) -> bool:
    """Whether a field is a list or tuple of numbers (possibly optional)."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    for candidate in (annotation, *options):
        if get_origin(candidate) in (list, tuple):
            items = [get_args(a)[0] if get_args(a) else a for a in get_args(candidate)]
            return any(_numeric(item) for item in items)
    return False


def _numeric(annotation: Any) -> bool:
    """Whether a field annotation is int or float (possibly optional), not bool."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return annotation in (int, float) or any(a in (int, float) for a in options)


# --------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------


def _bounds(metadata: list[Any]) -> tuple[str, str] | None:
    """Render the numeric bounds of a pydantic field as interval ends, or None."""
    lo, hi = "-inf", "inf"
    lo_bracket, hi_bracket = "(", ")"
    found = False
    for item in metadata:
        for attr, kind in (("gt", "lo_open"), ("ge", "lo"), ("lt", "hi_open"), ("le", "hi")):
            value = getattr(item, attr, None)
            if value is None or not isinstance(item, at.BaseMetadata):
                continue
            found = True
            if kind.startswith("lo"):
                lo, lo_bracket = f"{value:g}", "(" if kind == "lo_open" else "["
            else:
                hi, hi_bracket = f"{value:g}", ")" if kind == "hi_open" else "]"
    if not found:
        return None
    return f"{lo_bracket}{lo}", f"{hi}{hi_bracket}"


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (nested) model class reached by walking the field names in ``path``."""
    current: Any = model
    for key in path:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if key not in current.model_fields:
            return None
        current = current.model_fields[key].annotation
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _field_info(model: type[BaseModel], loc: tuple[Any, ...]):
    """FieldInfo of the field at ``loc`` (nested models walked), or None."""
    parent = _model_at(model, loc[:-1])
    if parent is None or not loc or loc[-1] not in parent.model_fields:
        return None
    return parent.model_fields[loc[-1]]


def format_validation_error(
    model: type[BaseModel], err: ValidationError, *, what: str | None = None
) -> str:
    """One line per problem: field path, value given, what is allowed."""
    return str(InvalidConfigError.from_validation(model, err, what=what))


class InvalidConfigError(ConfigError):
    """A :class:`ConfigError` from validating a config model, one problem per field.

    Each problem is ``(path, given, text, shown)``: the field's path (a tuple of keys; empty
    for a check across several fields), the value given, what is wrong and allowed, and
    whether the message shows the value. A caller that built the model from a part of a
    larger config names the fields by their full path (:meth:`located`) and the file a value
    came from (:meth:`with_sources`)."""

    def __init__(self, title: str, problems: list[tuple[tuple[Any, ...], Any, str, bool]]):
        super().__init__(title, problems)  # both in args: the error pickles (worker processes)
        self.title, self.problems = title, problems

    def __str__(self) -> str:
        lines = [f"{self.title} config is invalid:"]
        for path, given, text, shown in self.problems:
            dotted = ".".join(str(key) for key in path)
            if not path:  # a check across several fields: its message names them
                lines.append(f"  - {text}")
            else:
                lines.append(
                    f"  - {dotted} = {given!r}: {text}" if shown else f"  - {dotted}: {text}"
                )
        return "\n".join(lines)

    @classmethod
    def from_validation(
        cls, model: type[BaseModel], err: ValidationError, *, what: str | None = None
    ) -> InvalidConfigError:
        """The problems of pydantic's ``err`` for ``model`` (the title: ``what``)."""
        problems = []
        for problem in err.errors():
            loc, given, kind = tuple(problem["loc"]), problem.get("input"), problem["type"]
            if kind == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                allowed = ", ".join(parent.model_fields) if parent is not None else "?"
                problems.append((loc, given, f"unknown key (allowed keys: {allowed})", False))
                continue
            message = problem["msg"].removeprefix("Value error, ")
            ctx = problem.get("ctx") or {}
            for op, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                if op in ctx and kind.startswith(("greater", "less")):
                    message = f"must be {word} {ctx[op]}"
            info = _field_info(model, loc) if loc else None
            # a field validator's own message states the rule the value broke (e.g. whole
            # hexagonal rings); the field's numeric bounds were met, so they would mislead there
            bounds = _bounds(info.metadata) if info is not None and kind != "value_error" else None
            range_text = f" (allowed range: {bounds[0]}, {bounds[1]})" if bounds else ""
            description = f" [{info.description}]" if info is not None and info.description else ""
            problems.append((loc, given, f"{message}{range_text}{description}", True))
        return cls(what or model.__name__, problems)

    def located(self, data: dict[str, Any]) -> InvalidConfigError:
        """The same problems with each field named by its full path in ``data``, the larger
        config this model was built from a part of: ``n_ue`` of a scenario config built from
        an experiment's ``scenario`` overrides becomes ``scenario.n_ue``. A problem is
        repeated for every path of ``data`` that ends with the field's path and holds the
        value given, and kept as it was where none does."""
        problems = []
        for path, given, text, shown in self.problems:
            found = _paths_holding(data, path, given) if path else []
            problems += [(where, given, text, shown) for where in found or [path]]
        return type(self)(self.title, problems)

    def with_sources(self, sources: dict[tuple[str, ...], str]) -> InvalidConfigError:
        """The same problems, each followed by where its value was set when a path of
        ``sources`` (``("scenario", "n_ue")`` -> ``"from config file run.yaml"``) and the
        problem's path lie one inside the other."""
        problems = []
        for path, given, text, shown in self.problems:
            key = tuple(str(part) for part in path)
            where = [
                source
                for at, source in sources.items()
                if key and (key[: len(at)] == at or at[: len(key)] == key)
            ]
            where = list(dict.fromkeys(where))
            text = f"{text} ({'; '.join(where)})" if where else text
            problems.append((path, given, text, shown))
        return type(self)(self.title, problems)


def _paths_holding(
    data: Any, suffix: tuple[Any, ...], value: Any, prefix: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """The paths in ``data`` (nested dicts and lists) that end with ``suffix`` and hold
    ``value``."""
    found = []
    tail = tuple(str(key) for key in prefix[len(prefix) - len(suffix) :])
    if len(prefix) >= len(suffix) and tail == tuple(str(key) for key in suffix):
        if type(data) is type(value) and data == value:
            found.append(prefix)
    if isinstance(data, dict):
        for key, child in data.items():
            found += _paths_holding(child, suffix, value, (*prefix, key))
    elif isinstance(data, list):
        for i, child in enumerate(data):
            found += _paths_holding(child, suffix, value, (*prefix, i))
    return found


def config_sources(
    file: str | Path | None, overrides: list[str] | dict[str, Any] | None = None
) -> dict[tuple[str, ...], str]:
    """Where :func:`build_config` takes each value of the YAML ``file`` from: every path the
    file sets -> ``"from config file FILE"``, except the paths ``overrides`` set again (for
    :meth:`InvalidConfigError.with_sources`)."""
    if file is None:
        return {}
    items = (
        overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    )
    overridden = [tuple(key.split(".")) for key, _ in items]
    return {
        path: f"from config file {file}"
        for path in _leaf_paths(load_yaml(file))
        if not any(path[: len(o)] == o or o[: len(path)] == path for o in overridden)
    }


def _leaf_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every leaf of a nested mapping (a list, or an empty mapping, is a leaf)."""
    paths: list[tuple[str, ...]] = []
    for key, value in tree.items():
        path = (*prefix, str(key))
        paths += _leaf_paths(value, path) if isinstance(value, dict) and value else [path]
    return paths


# --------------------------------------------------------------------------------------------
# YAML presets and overrides
# --------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.sub=value`` (value read as YAML, so ``3``, ``1e-3``, ``[1, 2]`` work)."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} must look like key=value (a field and its value, e.g. seed=3)"
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; numbers are meant
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"override {text!r}: NaN is not a valid value")
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b] = value`` for ``key = "a.b"``, creating dicts along the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; refuse to read a device or a blob


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (a clear error if missing or malformed)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"config file {path} is not a regular file")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (UTF-8 YAML expected)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def _config_folder(scenario: str):
    """The package folder of ``scenario``'s presets: ``configs/<scenario>`` (``scenario`` may
    name a subfolder, e.g. ``experiments/catn-fig4``)."""
    folder = resources.files("skyshare") / "configs"
    for part in scenario.split("/"):
        folder = folder / part
    return folder


def preset_names(scenario: str) -> list[str]:
    """Names of the presets shipped for ``scenario`` (or ``experiments/<id>``)."""
    folder = _config_folder(scenario)
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_preset(scenario: str, preset: str) -> dict[str, Any]:
    """The raw mapping of preset ``preset`` of ``scenario`` (or ``experiments/<id>``)."""
    names = preset_names(scenario)
    if preset not in names:
        raise UnknownNameError(
            f"unknown preset {preset!r} for {scenario}; available: {', '.join(names) or 'none'}"
        )
    with resources.as_file(_config_folder(scenario)) as folder:
        return load_yaml(Path(folder) / f"{preset}.yaml")


def build_config(
    model: type[M],
    scenario: str,
    *,
    preset: str | None = "paper",
    file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> M:
    """Preset (or file) + overrides -> validated config.

    Precedence: model defaults < preset < file < overrides.
    """
    data: dict[str, Any] = {}
    if preset is not None:
        data.update(load_preset(scenario, preset))
    if file is not None:
        for key, value in load_yaml(file).items():
            data[key] = value
    items = (
        overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides or [])
    )
    for key, value in items:
        set_dotted(data, key, value)
    try:
        return model.from_dict(data, what=scenario)
    except InvalidConfigError as err:  # name the file a bad value came from
        raise err.with_sources(config_sources(file, overrides)) from None
