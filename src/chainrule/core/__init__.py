"""The engine: tensors, nodes, primitives, and the backward walk."""
