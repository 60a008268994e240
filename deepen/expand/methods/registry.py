"""The registry of up-scaling methods. A method declares itself once: its options (type, default, description), the
artifacts it reads besides the base's weights, a pure ``plan(options, num_layers)`` (which layer goes where; no
torch, no weights), and the function that makes one new layer's tensors. Writing the tensors out is the same for
every method (:func:`deepen.expand.execute.generate_layers`).

A new method is one decorated function (or one :func:`register` call for a plan that makes no tensors) plus a
config entry naming it as its ``generator``; its options are checked against what it declares.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from deepen.core.paths import Artifact
from deepen.expand import plan as plans
# no torch here (deepen/expand/methods/contract.py): the workflow imports this module every time it parses the
# Snakefile (once more per cluster job), and plans need no torch
from deepen.expand.methods.contract import Layer, LayerSource


@dataclass(frozen=True)
class Option:
    """One option of a method: ``schema`` is the JSON schema of its value; ``default`` is filled into the config
    (None: the method derives it, as ``description`` says)."""

    schema: dict
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class Method:
    name: str
    # (options, base layers) -> plan; pure
    plan: Callable[[dict, int], list[dict]]
    # (options, source, plan entry with its "position" in the expanded model) -> the new layer's tensors per matrix
    # type; None for a plan of base layers only
    make_layer: Callable[[dict, LayerSource, dict], Layer] | None = None
    options: dict[str, Option] = field(default_factory=dict)
    # options -> {artifact name: the artifact by key (deepen/core/paths.py), one file per linear matrix type}, read by
    # make_layer from ``source.artifacts[name]`` (its folder: the base's, or the aligned base's with `align: true`)
    artifacts: Callable[[dict], dict[str, Artifact]] = lambda opts: {}
    # True when every new layer needs both neighbours
    needs_upper: bool = False
    # True when the layers depend on ``options['seed']``: one model per CPT seed
    stochastic: bool = False
    # for a method whose new layers are copies of base layers, tensor by tensor times a factor: (options, entry with
    # its position, family) -> (base layer, {matrix type: factor}, factors of 1 left out), or None where the entry
    # is not such a copy. What a mergekit passthrough config can say (deepen/expand/mergekit_config.py).
    copy_of: Callable[[dict, dict, Any], tuple[int, dict[str, float]] | None] | None = None
    # (options, family, plan) -> problems of the options that need the base's family, beyond their schema
    check: Callable[[dict, Any, list[dict]], list[str]] | None = None
    # options -> files of the user's the method reads: a change to one reruns it
    reads: Callable[[dict], list[str]] = lambda opts: []


METHODS: dict[str, Method] = {}

# Options every method takes, defined in config/schema.yaml; a method declares the rest.
COMMON_OPTIONS = ("generator", "placement", "zero_init", "freeze", "seeds", "cpt")

# Declared by the methods that offer it: the method runs on the aligned base (deepen/expand/align.py), which computes
# the base's function. Its weights, its artifacts and the layers reconstruction carries over all come from there.
# No default filled in (None): results made before the option existed keep their generation settings.
ALIGN = Option({"type": "boolean"}, None,
               "run on the aligned base (default: false): every layer's MLP neurons and attention heads re-ordered to "
               "match its lower neighbour's, the same function (deepen/expand/align.py)")


def register(method: Method) -> Method:
    clash = [k for k in method.options if k in COMMON_OPTIONS]
    if clash:
        raise ValueError(f"method {method.name!r}: options {clash} are common to every method")
    METHODS[method.name] = method
    return method


def placed_plan(opts: dict, num_layers: int) -> list[dict]:
    """The base layers in order, with one new layer after each of ``placement``'s insertion points."""
    return plans.interleave(num_layers, plans.insertion_points(opts["placement"], num_layers))


def method(name: str, *, plan: Callable[[dict, int], list[dict]] = placed_plan, options: dict | None = None,
           artifacts: Callable[[dict], dict[str, Artifact]] | None = None, needs_upper: bool = False,
           stochastic: bool = False, **more):
    """Register the decorated ``make_layer(options, source, entry)`` as method ``name``; ``more``: the other fields
    of :class:`Method`."""

    def decorate(make_layer):
        register(Method(name, plan, make_layer, options or {}, artifacts or (lambda opts: {}), needs_upper,
                        stochastic, **more))
        return make_layer

    return decorate


def method_of(opts: dict) -> Method:
    name = opts["generator"]
    if name not in METHODS:
        close = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise plans.PlanError(f"unknown generator {name!r}{hint} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def option_problems(opts: dict) -> list[str]:
    """Options ``opts`` gives that its method does not declare, or whose values its schema rejects (``opts`` is left
    as it is: :func:`with_defaults` fills the declared defaults). Messages are relative to the method's entry."""
    from jsonschema import Draft202012Validator

    spec = method_of(opts)
    problems = []
    for key in opts:
        if key in COMMON_OPTIONS:
            continue
        if key not in spec.options:
            known = list(spec.options)
            close = difflib.get_close_matches(key, known, n=1)
            hint = (f"; did you mean {close[0]!r}?" if close else
                    f"; its options: {', '.join(known)}" if known else "; it takes no options of its own")
            problems.append(f"{key}: not an option of generator {spec.name!r}{hint}")
            continue
        for err in Draft202012Validator(spec.options[key].schema).iter_errors(opts[key]):
            problems.append(f"{key}: {err.message}")
    return problems


def with_defaults(opts: dict) -> dict:
    """``opts`` with its method's declared defaults for the options it leaves out."""
    spec = method_of(opts)
    return {**{k: o.default for k, o in spec.options.items() if o.default is not None}, **opts}


def build_plan(opts: dict, num_layers: int, plan: list[dict] | None = None) -> list[dict]:
    """The method's plan for a base of ``num_layers`` layers (or ``plan``, made by the caller), checked; raises
    PlanError."""
    spec, opts = method_of(opts), with_defaults(opts)
    plan = spec.plan(opts, num_layers) if plan is None else plan
    plans.validate(plan, num_layers)
    if spec.make_layer is None and plans.new_layers(plan):
        raise plans.PlanError(f"generator {spec.name!r} plans new layers but makes no tensors")
    if spec.needs_upper:
        top = [e["between"] for _, e in plans.new_layers(plan) if e["between"][1] is None]
        if top:
            raise plans.PlanError(
                f"generator {spec.name!r} needs two neighbours, but the placement puts a new layer above the "
                f"last layer {top[0][0]}; choose another placement")
    return plan


def required_artifacts(opts: dict) -> dict[str, Artifact]:
    """{artifact name: artifact by key} the method of ``opts`` reads."""
    return method_of(opts).artifacts(with_defaults(opts))


def artifact_patterns(opts: dict) -> dict[str, str]:
    """{artifact name: file pattern with {matrix}} the method of ``opts`` reads: on the base, or on the aligned base
    when it runs there (``align``)."""
    aligned = runs_aligned(opts)
    return {name: artifact.pattern(aligned) for name, artifact in required_artifacts(opts).items()}


def family_problems(opts: dict, arch, plan: list[dict]) -> list[str]:
    """Problems of ``opts`` that need the base's family (the method's ``check``)."""
    spec = method_of(opts)
    return spec.check(with_defaults(opts), arch, plan) if spec.check else []


def new_layer_copies(opts: dict, plan: list[dict], arch) -> dict[int, tuple[int, dict[str, float]]] | None:
    """{new layer id: (base layer, {matrix type: factor})} when every new layer of ``plan`` is a copy of a base
    layer times factors (``zero_init`` zeroes the residual outputs: factor 0); None otherwise."""
    spec, opts = method_of(opts), with_defaults(opts)
    copies = {}
    for position, entry in plans.new_layers(plan):
        copy = spec.copy_of(opts, {**entry, "position": position}, arch) if spec.copy_of else None
        if copy is None:
            return None
        layer, factors = copy
        if opts.get("zero_init"):
            factors = {**factors, **{m: 0.0 for m in arch.output_matrices}}
        copies[entry["id"]] = (layer, factors)
    return copies


def user_files(opts: dict) -> list[str]:
    """The files of the user's the method of ``opts`` reads."""
    return method_of(opts).reads(with_defaults(opts))


def is_stochastic(opts: dict) -> bool:
    return method_of(opts).stochastic


def runs_aligned(opts: dict) -> bool:
    """Whether the method of ``opts`` runs on the aligned base (its ``align`` option)."""
    return bool(with_defaults(opts).get("align"))
