"""What each section of a recipe holds, and the one way every section is checked.

A section (train, optim, schedule, eval, data, model, each objective, the recipe's top level) is a small
dataclass with keyword-only annotated fields: the fields are its valid keys, the annotations their types, the
defaults its defaults. `Spec.from_config(value)` checks a section with `registry.check_kwargs` -- the check
every component's constructor gets -- then runs the spec's own value rules (`check`), and returns the spec.
Every mistake is one ConfigError line naming the recipe file, the JSON path and the nearest valid key, which
the entry points print as one stderr line with exit code 2. An absent section is the empty one: `None` and
`{}` give the same defaults.

A section that configures a registered component (optim: the optimizer; schedule: the schedule) names the
registry in `component`: its remaining keys are that component's keyword arguments, checked against it and
kept in `options`.

This module imports no torch: a recipe can be checked before torch loads.
"""
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Literal, Optional, Tuple, Type, TypeVar

from ..registry import (LOGGERS, OPTIMIZERS, SCHEDULES, Registry, check_kwargs, config_error, config_path,
                       current_path, nearest)

S = TypeVar("S", bound="Section")


@dataclass(kw_only=True)
class Section:
    """Base of every section spec."""
    section: ClassVar[str] = ""                     # top-level key: errors are located there (absolute path)
    what: ClassVar[str] = ""                        # how errors name it ("train", "a param_groups rule")
    component: ClassVar[Optional[Registry]] = None  # keys beyond the fields are this component's arguments
    supplied: ClassVar[Tuple[str, ...]] = ()        # component arguments the program passes, not the recipe
    options: Dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls: Type[S], value: Any = None, *, what: str = "", **context: Any) -> S:
        """Check `value` (a dict; None when the section is absent) and return the spec. A top-level section
        is located at its key; a nested one (an objective) at the current config path. `context`: facts
        from outside the section that its rules need (the world size, train.log_every)."""
        path = cls.section or current_path()
        with config_path(path, absolute=True):
            return _parse(cls, value, what or cls.what or cls.section, context)

    def check(self) -> None:
        """Rules on values (ranges, agreements with other sections): raise config_error(message, key)."""

    def as_dict(self) -> Dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {**out, **self.options}


def _parse(spec: Type[S], value: Any, what: str, context: Dict[str, Any]) -> S:
    """`spec` checked at the current config path."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise config_error(f"expected an object for {what}, got {value!r}")
    own = {f.name: f for f in dataclasses.fields(spec) if f.init}
    hints = typing.get_type_hints(spec)
    values = {k: v for k, v in value.items() if k in own}
    extras = {k: v for k, v in value.items() if k not in own}
    fn = _component(spec, values, own) if spec.component is not None else None
    if extras:
        _check_extra_keys(spec, fn, extras, own, what)
    for key, v in list(values.items()):
        values[key] = _value(hints[key], v, key, what)
    check_kwargs(spec, values, what=what)
    if fn is not None:
        takes = set(_params(fn))
        skip = tuple(spec.supplied) + tuple(k for k in own if k in takes)
        check_kwargs(fn, extras, what=f"{spec.component.family} '{values.get('type', own['type'].default)}'",
                     skip=skip)
    obj = spec(**values)
    obj.options = extras
    obj.check(**context)
    return obj


def _component(spec: Type[Section], values: dict, own: dict):
    name = values.get("type", own["type"].default)
    if not isinstance(name, str):
        raise config_error(f"expected a name for 'type' of {spec.section or spec.what}, got {name!r}", "type")
    return spec.component.get(name)


def _params(fn) -> Dict[str, Any]:
    import inspect
    target = fn.__init__ if inspect.isclass(fn) else fn
    return {n: p for n, p in inspect.signature(target).parameters.items()
            if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_KEYWORD)}


def _check_extra_keys(spec: Type[Section], fn, extras: dict, own: dict, what: str) -> None:
    """An unknown key, with the nearest name among the section's keys and its component's."""
    params = _params(fn) if fn is not None else {}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    valid = set(own) | (set(params) - set(spec.supplied))
    for key in extras:
        if key not in valid:
            raise config_error(f"unknown key '{key}' for {what}{nearest(key, valid)}", key)


def _value(ann: Any, value: Any, key: str, what: str) -> Any:
    """Nested specs become spec objects; a Literal field names its choices."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Union and type(None) in args and value is not None:
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], value, key, what) if len(inner) == 1 else value
    if origin is Literal and value not in args:
        choices = ", ".join(repr(a) for a in args)
        raise config_error(f"expected one of {choices} for '{key}' of {what}, got {value!r}"
                           f"{nearest(value, args) if isinstance(value, str) else ''}", key)
    if isinstance(ann, type) and issubclass(ann, Section):
        with config_path(key):
            return _parse(ann, value, ann.what, {})
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], Section):
        if not isinstance(value, list):
            raise config_error(f"expected a list of objects for '{key}' of {what}, got {value!r}", key)
        out = []
        with config_path(key):
            for i, item in enumerate(value):
                with config_path(i):
                    out.append(_parse(args[0], item, args[0].what, {}))
        return out
    return value


def _at_least(spec: Section, minimum: float, *names: str) -> None:
    for name in names:
        v = getattr(spec, name)
        if v < minimum:
            raise config_error(f"{name} must be >= {minimum}, got {v!r}", name)


# -- the recipe's top level -------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Recipe(Section):
    """The top-level keys of a recipe; each section is checked where it is built."""
    what = "recipe"
    model: dict
    data: dict
    train: dict
    base: Any = None
    imports: List[str] = field(default_factory=list)
    description: str = ""
    shared: Optional[dict] = None
    views: Optional[dict] = None
    tokenizer: Optional[dict] = None
    optim: Optional[dict] = None
    schedule: Optional[dict] = None
    eval: Optional[dict] = None


# -- train ------------------------------------------------------------------------------------------------

MAX_SAMPLES = 2 ** 62


@dataclass(kw_only=True)
class TrainConfig(Section):
    """The run: step budget, global batch, precision, logging and checkpoints."""
    section = "train"
    total_steps: int                 # the only step budget; schedules read it
    batch_size: int                  # global: split over ranks x grad_accum
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"   # auto: bf16 where native (precision.py)
    grad_accum: int = 1
    clip_grad: float = 0.0           # 0: no clipping
    seed: int = 0
    log_every: int = 10
    save_every: int = 0              # 0: a checkpoint only at the end (or at --stop-at)
    save_every_minutes: float = 10.0  # also save when this long has passed since the last save (0: never)
    max_bad_steps: int = 10          # non-finite steps in a row (each skipped) before the run stops
    keep_last: int = 3               # 0: keep every checkpoint
    output_dir: str = "runs/default"
    loggers: List[str] = field(default_factory=lambda: ["jsonl"])
    num_workers: int = 2
    compile: bool = False            # compile each block in place (parallel.py)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # fsdp: FSDP2 per block + sharded checkpoints (parallel.py)
    activation_checkpointing: bool = False    # recompute blocks in backward, non-reentrant
    threads: int = 0                 # torch threads per rank; 0: cores - loader workers (runtime.py)
    sdpa_backend: Literal["auto", "flash", "efficient", "cudnn", "math"] = "auto"  # attention kernel
    device: Literal["auto", "cpu", "cuda"] = "auto"
    find_unused_parameters: bool = False
    progress: bool = True

    def check(self, *, world: int = 1) -> None:
        _at_least(self, 1, "total_steps", "batch_size", "grad_accum", "log_every", "max_bad_steps")
        _at_least(self, 0, "clip_grad", "save_every", "keep_last", "num_workers", "save_every_minutes",
                  "threads")
        if self.total_steps * self.batch_size >= MAX_SAMPLES:  # sample positions are int64 counters
            raise config_error(f"total_steps {self.total_steps:.3g} x batch_size {self.batch_size} samples is past "
                               f"what a run can count (2**62): is it a typo?", "total_steps")
        for i, name in enumerate(self.loggers):
            with config_path(f"loggers[{i}]"):
                LOGGERS.get(name)
        if self.batch_size % (world * self.grad_accum):
            raise config_error(f"batch_size {self.batch_size} does not split over {world} ranks x grad_accum "
                               f"{self.grad_accum}: make it a multiple of {world * self.grad_accum}", "batch_size")


# -- optim and schedule -----------------------------------------------------------------------------------

@dataclass(kw_only=True)
class LrScaling(Section):
    """MAE / MoCo v3 rule: lr = base lr x batch / ref_batch (linear) or its square root."""
    what = "lr_scaling"
    rule: Literal["linear", "sqrt"] = "linear"
    ref_batch: int = 256

    def check(self) -> None:
        _at_least(self, 1, "ref_batch")


@dataclass(kw_only=True)
class ParamGroupRule(Section):
    """Parameters whose names match the glob `match` (the first rule that matches wins)."""
    what = "a param_groups rule"
    match: str
    lr_mult: float = 1.0                    # 0 freezes them
    weight_decay: Optional[float] = None    # None: the optimizer's


@dataclass(kw_only=True)
class OptimConfig(Section):
    """The optimizer; keys other than these are the registered optimizer's (betas, eps, weight_decay...)."""
    section = "optim"
    component = OPTIMIZERS
    supplied = ("params",)
    type: str = "adamw"
    lr: float = 1e-4
    lr_scaling: Optional[LrScaling] = None
    param_groups: List[ParamGroupRule] = field(default_factory=list)

    def check(self) -> None:
        _at_least(self, 0, "lr")


@dataclass(kw_only=True)
class ScheduleConfig(Section):
    """The learning-rate factor of the step; keys other than `type` are the registered schedule's
    (warmup_steps, min_factor). No section, or one without a type: constant."""
    section = "schedule"
    component = SCHEDULES
    supplied = ("step", "total_steps")
    type: str = "constant"


# -- eval -------------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class EvalConfig(Section):
    """The training-time k-NN monitor (see eval/monitor.py)."""
    section = "eval"
    knn_every: int = 0          # 0: no k-NN monitor
    knn_train: int = 1000
    knn_val: int = 500
    k: int = 20
    temperature: float = 0.07
    batch_size: int = 256
    source: int = 0             # which data source (its train / val splits)
    view: Optional[str] = None  # the view whose size and normalisation the eval transform copies

    def check(self, *, log_every: int = 1) -> None:
        _at_least(self, 0, "knn_every")
        _at_least(self, 1, "knn_train", "knn_val", "k", "batch_size")
        if self.temperature <= 0:
            raise config_error(f"temperature must be > 0, got {self.temperature}", "temperature")
        if self.knn_every and self.knn_every % log_every:
            # monitors run when the trainer logs; other steps would silently never be evaluated
            raise config_error(f"knn_every ({self.knn_every}) must be a multiple of train.log_every "
                               f"({log_every})", "knn_every")


# -- data -------------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class DataConfig(Section):
    """Weighted sources (each a registered dataset plus "weight") and how samples are drawn from them."""
    section = "data"
    sources: list
    text_length: int = 32
    epoch_size: int = 0          # 0: the sum of the sources' lengths
    max_skip_share: float = 0.01
    max_retries: int = 16

    def check(self) -> None:
        if not self.sources:
            raise config_error("data needs a non-empty 'sources' list, e.g. "
                               "[{\"type\": \"synthetic_shapes\", \"weight\": 1.0}]", "sources")
        _at_least(self, 2, "text_length")
        _at_least(self, 0, "epoch_size", "max_retries", "max_skip_share")
        if self.max_skip_share > 1:
            raise config_error(f"max_skip_share must be <= 1, got {self.max_skip_share}", "max_skip_share")


# -- model ------------------------------------------------------------------------------------------------

@dataclass(kw_only=True)
class ModelConfig(Section):
    """The online tower, batch transforms and objectives (the components check their own keys)."""
    section = "model"
    embedding: dict
    encoder: dict
    objectives: dict
    batch_transforms: list = field(default_factory=list)
    mask_mode: Literal["drop", "replace"] = "drop"


@dataclass(kw_only=True)
class ObjectiveConfig(Section):
    """One objective: which online view it reads, which tokens, which target, and its weight."""
    what = "an objective"
    input: str
    target_view: str
    target_embedding: Any        # an object with a "type", or a "@shared_name" reference
    decoder: dict
    target: dict
    select: str = "all"
    weight: float = 1.0
    loss_on: Literal["all", "masked", "visible"] = "all"
