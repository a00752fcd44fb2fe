"""Recipes: one linear script per task, each with ``main(argv) -> dict`` and its launch commands in the docstring."""
