"""tests/kernels/ is exactly the set of tests CI also runs under ASan + UBSan (and in the
portable no-dispatch build): every test collected from this folder gets the ``kernels`` marker,
so ``pytest -m kernels`` and ``pytest tests/kernels`` select the same tests."""
import pathlib

import pytest

_HERE = pathlib.Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection sees the items
def pytest_collection_modifyitems(items):
    # a conftest's collection hook sees the whole session's items: mark only this folder's
    for item in items:
        if _HERE in pathlib.Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.kernels)
