"""Shared test fixtures."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'


def shared_data(name: str) -> pathlib.Path:
  """A folder of ../shared/data, or a clean skip where it is absent."""
  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f'{path} not found: the benchmark images live beside the '
                'repository in ../shared/data (not shipped with gramjax)')
  return path
