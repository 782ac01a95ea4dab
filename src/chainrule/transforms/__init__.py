"""Function transforms and gradient checking."""
