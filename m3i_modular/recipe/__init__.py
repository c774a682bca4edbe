"""JSON -> validated sections -> a built model: reading recipes (`base`, `imports`, `--set`), one spec per
section, value rules of component keys, the checks before allocating, Objective + PretrainModel assembly and
discovery (`--list`, `--explain`).

Imports the contract (interfaces, registry, errors), the component families and runtime/; never training/
(a recipe is read and checked before any loop exists)."""
