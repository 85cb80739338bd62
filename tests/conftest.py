import textwrap

import pytest
import torch

from bench.suite import expand, parse_suite


def make_suite(body: str, name: str = "t"):
    """A suite from TOML text; ``body`` holds everything but the name."""
    return parse_suite(f'name = "{name}"\n' + textwrap.dedent(body), source="test.toml")


def one_spec(task="kind = \"spiral\"\npoints_per_class = 50", model="hidden = [8]\nactivation = \"relu\"",
             train="optimizer = \"sgd\"\nlr = 0.1\nepochs = 5", seed=0):
    suite = make_suite(f"seeds = [{seed}]\n[task]\n{task}\n[model]\n{model}\n[train]\n{train}\n")
    (spec,) = expand(suite)
    return spec


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
