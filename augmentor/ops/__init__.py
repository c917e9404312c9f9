"""Op families; importing this package registers every op."""

from augmentor.ops import (  # noqa: F401  (registration side effect)
    color,
    containers,
    erasing,
    fields,
    geometric,
    noise,
    normalize,
    policies,
)
