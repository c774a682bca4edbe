"""One Registry per family, filled by a decorator beside each class.

`build(REGISTRY, cfg)` turns {"type": name, **kwargs} into an object, checking every key against the
constructor's keyword arguments (and their annotated types) first, then (with `contract`) the object against
its family's Protocol (m3i_modular/interfaces.py). Build arguments -- what the builder knows and the recipe
does not, like a decoder's in_dim -- are passed only as the constructor declares them. Nested builds inherit
the JSON path of their parent through a context variable, so an error deep inside a text tower still names
its full path.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
import typing
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional

from .errors import ConfigError

# -- value rules (release 0.1's rules.py) ------------------------------------------------------------------
# Value rules every component's keys get, by name, in registry.check_kwargs: sizes are positive, counts are not
# negative, drop rates and probabilities lie in [0, 1], and no number is NaN or infinite. Rules between keys
# (heads dividing dim, image size and patch) stay in the components' constructors, whose ValueErrors the builder
# turns into one config-error line too (registry.build).
# sizes and counts that must be >= 1
POSITIVE = {"dim", "heads", "patch_size", "image_size", "in_chans", "vocab_size", "num_classes", "max_length",
            "seq_length", "n_mels", "num_mel_bins", "frames_per_token", "queries", "pos_dim", "points", "group",
            "max_tokens", "num_segments", "num_samples", "block", "top_k", "k", "size", "depths", "groups",
            "kernel_size", "batch_size", "ref_batch"}
# counts and strengths where 0 means none (or "the default")
NON_NEGATIVE = {"layers", "depth", "hidden", "channels", "projector_hidden", "predictor_hidden", "projector_layers",
                "predictor_layers", "neck_dim", "warmup_steps", "sample_rate", "weight_decay", "lr",
                "second_moment_weight", "head_scale", "time_masks", "freq_masks", "time_width", "freq_width",
                "max_retries", "epoch_size"}
# rates: [0, 1)
RATE = {"drop_path", "dropout", "attn_drop", "proj_drop", "label_smoothing"}
# probabilities and fractions: [0, 1]
PROBABILITY = {"p", "label_fraction", "caption_fraction", "min_factor", "replace_prob", "random_prob"}
# strictly positive reals
POSITIVE_REAL = {"mlp_ratio", "temperature", "eps", "max_logit_scale"}


def _numbers(value: Any):
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def value_problem(key: str, value: Any) -> Optional[str]:
    """What is wrong with `value` for a key named `key` (None: nothing this module knows)."""
    for v in _numbers(value):
        if v != v or v in (float("inf"), float("-inf")):
            return f"{key} must be a finite number, got {v}"
        if key in POSITIVE and v < 1:
            return f"{key} must be >= 1, got {v}"
        if key in NON_NEGATIVE and v < 0:
            return f"{key} must be >= 0, got {v}"
        if key in RATE and not 0 <= v < 1:
            return f"{key} must be in [0, 1), got {v}"
        if key in PROBABILITY and not 0 <= v <= 1:
            return f"{key} must be in [0, 1], got {v}"
        if key in POSITIVE_REAL and not v > 0:
            return f"{key} must be > 0, got {v}"
    return None


_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("m3i_config_path", default="")
_FILE: contextvars.ContextVar[str] = contextvars.ContextVar("m3i_config_file", default="")
_RESOLVER: contextvars.ContextVar[Optional[Callable[[str], Any]]] = contextvars.ContextVar("m3i_resolver",
                                                                                          default=None)
_SEED: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("m3i_init_seed", default=None)


def nearest(name: str, options) -> str:
    """' (did you mean X?)' or a list of valid names, for error messages."""
    options = sorted(str(o) for o in options)
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.5)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (valid: {', '.join(options)})" if options else ""


def config_error(message: str, key: str = "") -> ConfigError:
    """A ConfigError located at the current build path (plus `key`)."""
    return ConfigError(message, path=join_path(_PATH.get(), key), file=_FILE.get())


def join_path(base: str, key) -> str:
    if key == "" or key is None:
        return base
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


@contextlib.contextmanager
def config_path(key, *, file: Optional[str] = None, absolute: bool = False) -> Iterator[str]:
    """Enter a sub-path of the config (`model.encoder`); errors raised inside name it."""
    path = str(key) if absolute else join_path(_PATH.get(), key)
    tok = _PATH.set(path)
    ftok = _FILE.set(file) if file is not None else None
    try:
        yield path
    finally:
        _PATH.reset(tok)
        if ftok is not None:
            _FILE.reset(ftok)


def current_path() -> str:
    return _PATH.get()


@contextlib.contextmanager
def build_context(*, resolver: Optional[Callable[[str], Any]] = None, seed: Optional[int] = None):
    """While building a model: how "@name" strings resolve, and the seed that module inits derive from."""
    rtok, stok = _RESOLVER.set(resolver), _SEED.set(seed)
    try:
        yield
    finally:
        _RESOLVER.reset(rtok)
        _SEED.reset(stok)


def resolve_refs(value: Any) -> Any:
    """Replace "@name" strings (recursively in lists and dicts) by the objects they name."""
    resolver = _RESOLVER.get()
    if resolver is None:
        return value
    if isinstance(value, str) and value.startswith("@"):
        return resolver(value)
    if isinstance(value, list):
        return [resolve_refs(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve_refs(v) for k, v in value.items()}
    return value


@contextlib.contextmanager
def seeded_init(path: str):
    """Each module initialises from a seed derived from (run seed, its config path): adding an objective
    does not change the tower's initial weights."""
    seed = _SEED.get()
    if seed is None:
        yield
        return
    import torch  # local: the registry itself needs no torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{seed}:{path}".encode()) & 0x7FFFFFFF)
        yield


class Registry:
    """`homes`: the package modules whose import registers the built-in entries; they are imported on the
    first lookup, so `import m3i_modular` (and `pretrain.py --help`) needs no torch."""

    def __init__(self, family: str, *homes: str):
        self.family, self.homes = family, homes
        self._entries: Dict[str, Callable] = {}
        self._populated = not homes

    def _populate(self) -> None:
        if not self._populated:
            self._populated = True
            import importlib
            for home in self.homes:
                importlib.import_module(home)

    def register(self, name: str) -> Callable:
        def deco(obj):
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.family} '{name}' is registered twice "
                                 f"({self._entries[name].__module__} and {obj.__module__})")
            self._entries[name] = obj
            obj.registry_name = name
            return obj
        return deco

    def get(self, name: str) -> Callable:
        self._populate()
        if name not in self._entries:
            raise config_error(f"unknown {self.family} type '{name}'{nearest(name, self._entries)}", "type")
        return self._entries[name]

    def names(self) -> List[str]:
        self._populate()
        return sorted(self._entries)

    def __contains__(self, name) -> bool:
        self._populate()
        return name in self._entries


_P = "m3i_modular."
EMBEDDINGS = Registry("embedding", _P + "embeddings")
ENCODERS = Registry("encoder", _P + "encoders")
TARGET_EMBEDDINGS = Registry("target_embedding", _P + "target_embeddings")
DECODERS = Registry("decoder", _P + "decoders")
TARGETS = Registry("target", _P + "targets")
BATCH_TRANSFORMS = Registry("batch_transform", _P + "batch_transforms")
# an objective's "select": "all" in selection.py, the mixing roles beside mix_views
SELECTORS = Registry("selector", _P + "selectors", _P + "batch_transforms")
DATASETS = Registry("dataset", _P + "data.sources")
TRANSFORMS = Registry("transform", _P + "data.views")
TOKENIZERS = Registry("tokenizer", _P + "data.tokenizers")
OPTIMIZERS = Registry("optimizer", _P + "training.optim")
SCHEDULES = Registry("schedule", _P + "training.schedules")
LOGGERS = Registry("logger", _P + "training.loggers")


def _type_ok(value: Any, ann: Any) -> bool:
    """A lenient structural check of a JSON value against a constructor annotation."""
    if ann is inspect.Parameter.empty or ann is Any:
        return True
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in args)
    if ann is type(None):
        return value is None
    if origin in (list, List, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(_type_ok(v, inner) for v in value)
    if origin in (dict, Dict, typing.Mapping):
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in args
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(ann, type):
        return isinstance(value, ann)
    return True


def _describe(ann: Any) -> str:
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def keyword_params(fn: Callable) -> typing.Tuple[Dict[str, inspect.Parameter], Dict[str, Any], bool]:
    """What check_kwargs reads of `fn` (a class: its __init__): its keyword parameters by name, their resolved
    annotations, and whether it takes **kwargs. `--explain` (discover.py) shows the same."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an unresolvable annotation only loses the type check
        hints = {}
    params = {n: p for n, p in sig.parameters.items()
              if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    hints = {n: hints.get(n, p.annotation) for n, p in params.items()}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return params, hints, takes_any


def check_kwargs(fn: Callable, kwargs: Dict[str, Any], *, what: str, skip=()) -> None:
    """Check keys (unknown, missing) and types of `kwargs` against `fn`'s keyword parameters."""
    params, hints, takes_any = keyword_params(fn)
    for key, value in kwargs.items():
        if key not in params:
            if takes_any:
                continue
            raise config_error(f"unknown key '{key}' for {what}{nearest(key, params)}", key)
        ann = hints[key]
        if not _type_ok(value, ann):
            raise config_error(f"expected {_describe(ann)} for '{key}' of {what}, got {value!r}", key)
        problem = value_problem(key, value)
        if problem:
            raise config_error(f"{problem} ({what})", key)
    for name, p in params.items():
        if name in skip:
            continue
        if p.default is inspect.Parameter.empty and name not in kwargs:
            raise config_error(f"missing key '{name}' for {what}", name)


# What a constructor raises when it refuses its values (a shape rule, a size torch cannot allocate).
BUILD_ERRORS = (ValueError, ZeroDivisionError, OverflowError, AssertionError, RuntimeError)

# What each build argument is, for the error that names one a constructor lacks or a recipe sets.
BUILD_ARGS = {"in_dim": "the online encoder's width", "out_dim": "the target embedding's width",
              "encoder_dim": "the online encoder's width", "output_dir": "the run directory"}


def _accepts(fn: Callable) -> Callable[[str], bool]:
    """Whether `fn` (a class: its __init__) takes a keyword argument of a given name."""
    params = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return lambda name: True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return lambda name: name in names


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def build(registry: Registry, cfg: Any, *, key: Any = "", offer: Optional[Dict[str, Any]] = None,
          contract: Optional[Callable[[Any], List[str]]] = None, **extra: Any) -> Any:
    """Build a component from {"type": ..., **kwargs}.

    extra: build arguments every constructor of this call must take (a decoder's in_dim and out_dim);
    offer: build arguments passed only to a constructor that names them (a target embedding's encoder_dim);
    contract: a check of the built object, returning what it lacks (interfaces.conforms(Protocol))."""
    with config_path(key):
        if not isinstance(cfg, dict):
            raise config_error(f"expected an object with a 'type' for {registry.family}, got {cfg!r}")
        if "type" not in cfg:
            raise config_error(f"missing key 'type' for {registry.family}"
                               f" (valid: {', '.join(registry.names())})", "type")
        cls = registry.get(cfg["type"])
        what = f"{registry.family} '{cfg['type']}'"
        given = {**(offer or {}), **extra}
        for k in cfg:
            if k in given:
                raise config_error(f"'{k}' of {what} is not a recipe key: the builder passes it "
                                   f"({BUILD_ARGS.get(k, 'a build argument')})", k)
        kwargs = {k: resolve_refs(v) for k, v in cfg.items() if k != "type"}
        check_kwargs(cls, kwargs, what=what, skip=tuple(given))
        accepts = _accepts(cls)
        for k in extra:  # a raw TypeError from the call below would be a traceback, not one line
            if not accepts(k):
                raise config_error(f"{what} ({_origin(cls)}) cannot be built: its constructor takes no '{k}' "
                                   f"({BUILD_ARGS.get(k, 'a build argument')}), which every "
                                   f"{registry.family} is given")
        passed = {k: v for k, v in (offer or {}).items() if accepts(k)}
        with seeded_init(current_path()):
            try:
                obj = cls(**kwargs, **passed, **extra)
            except BUILD_ERRORS as e:  # the constructor refused these values (heads not dividing dim, ...)
                if "meta" in str(e):  # building on the meta device for the memory estimate: not the values
                    raise
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                if "overflow" in first.lower():
                    first = f"its tensors would be larger than torch can address ({first[:120]})"
                raise config_error(f"{what} cannot be built from these values: {first}") from None
        problems = contract(obj) if contract is not None else []
        if problems:
            raise config_error(f"{what} ({_origin(cls)}) does not satisfy the {registry.family} contract "
                               f"(m3i_modular/interfaces.py): {'; '.join(problems)}")
        return obj
