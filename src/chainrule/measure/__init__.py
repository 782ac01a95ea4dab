"""Measuring a step without changing it: shapes only (:mod:`.shapes`), FLOPs (:mod:`.cost`), memory (:mod:`.memory`).

Every instrument here plugs into the engine through :class:`chainrule.core.interpret.Interpreter`.
"""
