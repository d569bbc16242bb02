"""Model registry: `create_model(name, **kwargs)` over every model family fume-edge can train, export and run."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

from torch import nn

from fume_edge.errors import FumeEdgeError

ModelBuilder = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: make a model class or builder available as `create_model(name)`."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return decorator


def _load_families() -> None:
    # Importing a family module registers its models.
    from fume_edge.model import baselines, fume  # noqa: F401


def list_models() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; an unknown name or argument is one clear error."""
    _load_families()
    if name not in _REGISTRY:
        raise FumeEdgeError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise FumeEdgeError(f"model {name!r}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (a shared encoder counts once)."""
    return sum(p.numel() for p in model.parameters())
