"""The component contract: the records passed between the five families, the Protocol each family satisfies,
the lifecycle hooks the model calls, how a component says what it needs, and the holder of a module it
borrows from the assembled model.

    view --Embedding--> Tokens --Encoder--> Encoded --Selector--> Selection --Decoder--> prediction
    batch --TargetEmbedding--> TargetOut;   Target(prediction, TargetOut, loss_mask) -> (loss, metrics)

What a component needs, it declares in one of two ways; the builder passes only what is declared and checks
every component against its family's Protocol when the model is built (one config-error line otherwise).

* Build arguments, named in the constructor's signature. Every decoder takes `in_dim` (the online encoder's
  width) and `out_dim` (its target embedding's width); a target embedding whose constructor names
  `encoder_dim` gets the online encoder's width. A recipe cannot set them.
* Run-time needs, a class attribute `needs` (a tuple; a property where it depends on what bind() found),
  each arriving as a keyword argument of forward():
      "query"          (decoder) Query: where the target view's tokens lie in the input view's frame
      "target_input"   (decoder) the selected rows of batch[target_view] (teacher forcing: seq2seq)
      "batch:<field>"  (decoder, embedding) batch[<field>], as keyword <field>; a decoder gets the selected
                       rows of a tensor whose first dimension is the batch; None when the batch lacks it

Batch keys the core reads besides the views: "masks"[input] (B, L) bool, True = hidden from the encoder;
"attn_masks"[input] (B, 1, N, N) bool, True = may attend (a batch transform writes it, e.g. mix_views);
"geometry"[view] (B, 5) crop box + flip; "present"[field] (B,) bool. Anything else a batch transform
writes (mixing bookkeeping) is read by the selectors registered beside it.
"""
import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, runtime_checkable

import torch
from torch import nn

from .registry import config_error

# -- records ------------------------------------------------------------------------------------------------


@dataclass
class Tokens:
    """What an embedding hands to the encoder (and, through encoder_output_tokens, the encoder's layout)."""
    x: torch.Tensor                              # (B, N, D)
    grid: Optional[Tuple[int, int]] = None       # patch grid (h, w) for image tokens
    pad_mask: Optional[torch.Tensor] = None      # (B, N) bool, True = padding (text)
    patch_size: Optional[int] = None
    pos: Optional[torch.Tensor] = None           # (1 or B, N, D) the position part added to x, kept so a
                                                 # masked token (mask_mode "replace") is mask token + position
    prefix: int = 0                              # leading non-grid tokens (a CLS token)

    def with_x(self, x: torch.Tensor) -> "Tokens":
        return replace(self, x=x)


@dataclass
class Encoded:
    """One online input after the encoder."""
    name: str
    z: torch.Tensor                        # (B, prefix + K, D)
    tokens: Tokens
    keep: Optional[torch.Tensor] = None    # (B, K) grid positions encoded (None: all)
    mask: Optional[torch.Tensor] = None    # (B, L) bool, True = hidden from the encoder
    prefix: int = 0
    replaced: Optional[torch.Tensor] = None  # (B, L) bool, True = entered as the mask token ("replace")


@dataclass
class Selection:
    """The online tokens one objective reads (e.g. image A's tokens of a mixed input)."""
    z: torch.Tensor                                  # (B', K, D) encoder output of the selected tokens
    rows: torch.Tensor                               # (B',) which batch sample each row belongs to
    pos: Optional[torch.Tensor] = None               # (B', K, 2) token centres in input-view coordinates
    token_index: Optional[torch.Tensor] = None       # (B', K) positions of the tokens in the input's grid
    visible: Optional[torch.Tensor] = None           # (B', L) bool: grid positions present in z
    grid: Optional[Tuple[int, int]] = None
    geometry: Optional[torch.Tensor] = None          # (B', 5) crop box + flip of the row's input view
    pad_mask: Optional[torch.Tensor] = None          # (B', K) bool, True = padding (text)
    prefix: int = 0                                  # leading non-grid tokens in z (a CLS token)
    view: Optional[str] = None                       # the view `geometry` belongs to (a mixed input's source)


@dataclass
class Query:
    """Where a predictor must answer: target-view patch centres in input-view coordinates."""
    pos: torch.Tensor                                # (B', M, 2)
    log_scale: torch.Tensor                          # (B', 2) log(target size / input size)
    same_view: bool                                  # the target grid is the input grid (MAE-style fill)


@dataclass
class TargetOut:
    """z_y for each sample, or candidates with the index of the right one; `valid` marks usable samples."""
    valid: torch.Tensor                              # (B,) bool
    value: Optional[torch.Tensor] = None             # (B, ...) regression targets
    candidates: Optional[torch.Tensor] = None        # (K, D) candidate embeddings (classes, vocabulary, batch)
    bias: Optional[torch.Tensor] = None              # (K,) per-candidate logit bias
    index: Optional[torch.Tensor] = None             # (B,) or (B, M) index of the right candidate
    grid: Optional[Tuple[int, int]] = None           # patch grid of per-token targets
    candidates_per_row: bool = False                 # candidates are per sample (batch negatives)
    candidate_valid: Optional[torch.Tensor] = None   # (K,) bool: usable candidates (a missing caption is not)

    def take(self, rows: torch.Tensor) -> "TargetOut":
        """The targets for selected rows (a roll-paired B role reads sample i-1)."""
        pick = lambda t: None if t is None else t.index_select(0, rows)  # noqa: E731
        out = replace(self, valid=pick(self.valid), value=pick(self.value), index=pick(self.index))
        return out


# -- the five families, batch transforms and selectors ------------------------------------------------------
# Every parameter of a Protocol's forward is passed by the model, so an implementation must accept it
# (by position for the leading ones without a default, by name for the others, or through **kwargs).

class Embedding(Protocol):
    """A view (images, token ids, fbank frames) -> Tokens of width `dim`. A part of a composed embedding
    ({"word": ..., "position": ...}) also receives the tokens of the parts before it; alone, tokens=None."""
    dim: int

    def forward(self, inputs: torch.Tensor, tokens: Optional[Tokens] = None, **needed: Any) -> Tokens: ...


class Encoder(Protocol):
    """Tokens -> z_x (B, N or K, dim). keep: (B, K) indices of the tokens to encode (MAE drops the rest);
    attn_mask: (B, 1, N, N) bool; return_layers: also every block's output (a momentum tower's targets).
    An encoder may declare `input_dim`, the token width it takes: the embedding's dim is checked against it
    when the model is built (tower_width_problem)."""
    dim: int

    def forward(self, tokens: Tokens, keep: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None, return_layers: bool = False) -> Any: ...


@runtime_checkable
class ResamplesGrid(Protocol):
    """An encoder that changes the token grid (a strided conv net) says which grid its output lies on."""

    def output_grid(self, grid: Tuple[int, int]) -> Tuple[int, int]: ...


class TargetEmbedding(Protocol):
    """f_phi: the batch -> TargetOut for one view (a batch field), of width `dim`."""
    dim: int

    def forward(self, batch: Dict[str, Any], *, view: str) -> TargetOut: ...


class Decoder(Protocol):
    """f_psi: the selected online tokens -> the prediction of z_y (width out_dim); `needs` adds keywords."""

    def forward(self, sel: Selection, **needed: Any) -> torch.Tensor: ...


class Target(Protocol):
    """-log p(z_y | prediction): (loss, metrics); loss_mask (B', K) bool keeps tokens (loss_on)."""

    def forward(self, pred: torch.Tensor, tgt: TargetOut,
                loss_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]: ...


class BatchTransform(Protocol):
    """A cross-sample stage run by the model before the online tower (mixing two images' views)."""

    def forward(self, batch: Dict[str, Any]) -> Dict[str, Any]: ...


class Selector(Protocol):
    """An objective's `select`: which rows and tokens of an encoded input it reads (registered in SELECTORS;
    "all" is the core's, mixing roles live beside the batch transform that writes their bookkeeping)."""

    def __call__(self, enc: Encoded, batch: Dict[str, Any]) -> Selection: ...


# -- lifecycle hooks: any module of the model may implement them --------------------------------------------

@runtime_checkable
class BindsModel(Protocol):
    """Called once after assembly with the whole model: fill Borrowed references, copy towers."""

    def bind(self, model: nn.Module) -> None: ...


@runtime_checkable
class AfterOptimizerStep(Protocol):
    """Called by the trainer after every optimizer step (EMA towers update here)."""

    def after_optimizer_step(self, step: int, total_steps: int) -> None: ...


@runtime_checkable
class AfterInitFrom(Protocol):
    """Called after --init-from loaded weights (an EMA copy restarts from the online weights)."""

    def after_init_from(self) -> None: ...


# -- needs --------------------------------------------------------------------------------------------------

QUERY, TARGET_INPUT, BATCH = "query", "target_input", "batch:"
_ALLOWED_NEEDS = {Embedding: (BATCH,), Decoder: (QUERY, TARGET_INPUT, BATCH)}


def needs_of(component: Any) -> Tuple[str, ...]:
    """The run-time needs a component declares (none when it has no `needs`)."""
    return tuple(getattr(component, "needs", ()))


def need_keyword(need: str) -> str:
    """The keyword a need arrives as: "batch:segments" -> segments."""
    return need[len(BATCH):] if need.startswith(BATCH) else need


# -- borrowed modules ---------------------------------------------------------------------------------------

class Borrowed:
    """A module of the assembled model that a component uses but does not own (the online tower an EMA copy
    follows, a decoder whose weights another objective reuses). Held by reference and not registered as a
    submodule, so its parameters are saved, optimised and EMA-updated once, by their owner. Filled in
    bind(model), or at construction when the builder hands the module over ("@name" references)."""

    def __init__(self, what: str, module: Optional[nn.Module] = None):
        self.what, self._module = what, module

    def set(self, module: nn.Module) -> None:
        self._module = module

    def get(self) -> nn.Module:
        if self._module is None:
            raise RuntimeError(f"{self.what} is used before bind(model) filled it")
        return self._module

    @property
    def bound(self) -> bool:
        return self._module is not None

    def __repr__(self) -> str:
        held = type(self._module).__name__ if self._module is not None else "unbound"
        return f"Borrowed({self.what!r}, {held})"


def resolve_part(model: nn.Module, path: str) -> nn.Module:
    """A dotted path into the assembled model ("encoder", "objectives.simclr.decoder"), for bind()."""
    obj = model
    for name in path.split("."):
        if not hasattr(obj, name):
            raise config_error(f"model has no part '{path}' (stuck at '{name}')")
        obj = getattr(obj, name)
    if not isinstance(obj, nn.Module):
        raise config_error(f"'{path}' is not a module")
    return obj


def encoder_output_tokens(encoder: Any, tokens: Tokens, z: torch.Tensor) -> Tokens:
    """The layout of an encoder's output z: an encoder that changes the grid (ResamplesGrid) moves the grid
    and the patch size (stride in pixels) with it; others keep the embedding's layout."""
    if not isinstance(encoder, ResamplesGrid) or tokens.grid is None:
        return tokens
    grid = tuple(encoder.output_grid(tuple(tokens.grid)))
    patch = tokens.patch_size
    if patch is not None and grid[0]:
        patch = patch * -(-tokens.grid[0] // grid[0])  # ceil: the stride of the output map
    return replace(tokens, x=z, grid=grid, patch_size=patch)


# -- the build-time check -----------------------------------------------------------------------------------

def tower_width_problem(embedding: Any, encoder: Any) -> Optional[str]:
    """Why an encoder cannot take an embedding's tokens (its declared input_dim differs), or None."""
    want, have = getattr(encoder, "input_dim", None), getattr(embedding, "dim", None)
    if want is None or have is None or want == have:
        return None
    return (f"the encoder takes {want}-wide tokens, the embedding makes {have}-wide ones: give the embedding's "
            f"dim and the encoder's width the same value")


def conforms(protocol: type) -> Callable[[Any], List[str]]:
    """A check for registry.build(contract=...): what a built component lacks to satisfy `protocol`."""
    return lambda obj: contract_problems(obj, protocol)


def contract_problems(obj: Any, protocol: type) -> List[str]:
    """Problems (empty: none) of `obj` against a family Protocol: members, forward() signature, needs."""
    problems: List[str] = []
    if protocol is not Selector and not isinstance(obj, nn.Module):
        problems.append("it is not a torch.nn.Module")
    for name in protocol.__dict__.get("__annotations__", {}):
        if not hasattr(obj, name):
            problems.append(f"it has no attribute '{name}'")
    needs = needs_of(obj)
    if isinstance(getattr(obj, "needs", ()), str):  # ("query") is a string: its letters are no needs
        problems.append("`needs` is a string, not a tuple: write needs = (\"query\",)")
        needs = ()
    allowed = _ALLOWED_NEEDS.get(protocol, ())
    for need in needs:
        if not isinstance(need, str) or not any(need == a or (a == BATCH and need.startswith(BATCH)
                                                               and need_keyword(need).isidentifier())
                                                for a in allowed):
            problems.append(f"unknown need {need!r} (valid here: {', '.join(allowed) or 'none'}; "
                            f"batch fields as \"batch:<field>\")")
    method = "__call__" if protocol is Selector else "forward"
    if method == "forward" and isinstance(obj, nn.Module) and type(obj).forward is nn.Module.forward:
        problems.append("it defines no forward()")
    else:
        impl = obj if method == "__call__" else getattr(obj, method, None)
        if not callable(impl):
            problems.append(f"it defines no {method}()")
        else:
            expected = list(inspect.signature(getattr(protocol, method)).parameters.values())[1:]
            problems += _signature_problems(impl, method, expected,
                                           [need_keyword(n) for n in needs if isinstance(n, str)])
    return problems


def _signature_problems(impl: Callable, method: str, expected: List[inspect.Parameter],
                        need_names: List[str]) -> List[str]:
    try:
        params = list(inspect.signature(impl).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return []
    P = inspect.Parameter
    positional = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    by_name = {p.name for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    var_pos = any(p.kind == P.VAR_POSITIONAL for p in params)
    var_kw = any(p.kind == P.VAR_KEYWORD for p in params)
    n_pos = sum(1 for p in expected if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
                and p.default is P.empty)
    passed_names = [p.name for p in expected if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)
                    and (p.default is not P.empty or p.kind == P.KEYWORD_ONLY)] + need_names
    problems = []
    if len(positional) < n_pos and not var_pos:
        problems.append(f"{method}() takes {len(positional)} positional arguments, the model passes {n_pos}")
    for name in passed_names:
        if name not in by_name and not var_kw:
            why = " (a declared need)" if name in need_names else ""
            problems.append(f"{method}() takes no '{name}'{why}")
    for p in positional[n_pos:] + [p for p in params if p.kind == P.KEYWORD_ONLY]:
        if p.default is P.empty and p.name not in passed_names:
            problems.append(f"{method}() requires '{p.name}', which the model does not pass "
                            f"(declare it in `needs`, or give it a default)")
    return problems
