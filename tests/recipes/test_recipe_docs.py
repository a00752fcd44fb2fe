"""Every recipe's docstring (its --help text) launches configs that exist."""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import nlp_transfer.recipes

REPO = Path(__file__).resolve().parents[2]
RECIPES = [m.name for m in pkgutil.iter_modules(nlp_transfer.recipes.__path__)]


@pytest.mark.parametrize("name", RECIPES)
def test_docstring_configs_exist(name):
    doc = importlib.import_module(f"nlp_transfer.recipes.{name}").__doc__ or ""
    configs = re.findall(r"recipes/[\w./-]+\.yaml", doc)
    missing = [c for c in configs if not (REPO / c).is_file()]
    assert not missing, f"nlp_transfer/recipes/{name}.py launches configs that do not exist: {missing}"


def test_the_sentiment_docstring_names_configs():
    # the regression this guards against: a launch line for recipes/sentiment/minilm_imdb_lora.yaml (never shipped)
    doc = importlib.import_module("nlp_transfer.recipes.sentiment").__doc__
    assert re.findall(r"recipes/sentiment/[\w.-]+\.yaml", doc)
