"""What a kernel started ahead runs before its notebook: the notebook's library imports and the clients they
import on first use, and nothing else."""

from __future__ import annotations

import sys
import types

import nbformat

from runbook_lib import kernels, kube, warm_up
from runbook_lib.runner import NOTEBOOKS, notebooks_dir


def _notebook(tmp_path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("from runbook_lib import viz")] + [nbformat.v4.new_code_cell(c)
                                                                                 for c in cells]
    nbformat.write(nb, tmp_path / "n.ipynb")
    return tmp_path / "n.ipynb"


def test_the_warm_up_imports_the_library_modules_the_notebook_imports_and_binds_no_name(tmp_path) -> None:
    src = _notebook(tmp_path, "import os\nfrom runbook_lib import sizes, fault_kinds\nrb = sizes.parse_size('1GiB')",
                    "from runbook_lib.steps import nb04_storage_classes as classes\n  import runbook_lib.errors  ",
                    "from runbook_lib import sizes, fault_kinds\nos.remove('/nowhere')")
    code = kernels.warm_up_code(src)
    assert code.count("from runbook_lib import sizes, fault_kinds") == 1
    assert "import os" not in code and "parse_size" not in code and "viz" not in code and "remove" not in code
    namespace: dict = {}
    exec(compile(code, "<warm-up>", "exec"), namespace)
    assert set(namespace) == {"__builtins__"}
    assert {"runbook_lib.sizes", "runbook_lib.steps.nb04_storage_classes", "runbook_lib.errors"} <= set(sys.modules)
    assert "kubernetes.client.rest" in kube.WARM_UP_IMPORTS
    assert set(warm_up.declared()) <= set(sys.modules)  # what the library would import on first use


def test_a_notebook_without_library_imports_warms_up_nothing(tmp_path) -> None:
    assert kernels.warm_up_code(_notebook(tmp_path, "import os\nprint(1)")) == ""


def test_every_runbook_warms_up_its_step_module_and_the_session() -> None:
    for name in NOTEBOOKS:
        code = kernels.warm_up_code(notebooks_dir() / f"{name}.ipynb")
        assert "from runbook_lib.session import Session" in code, name
        assert "from runbook_lib.steps import nb" in code, name


def test_a_notebook_that_draws_figures_starts_its_browser_ahead_and_one_that_draws_none_does_not(tmp_path) -> None:
    drawing = kernels.warm_up_code(_notebook(tmp_path, "from runbook_lib import manifests, viz"))
    assert drawing.endswith("    figure_export.prepare()\n_runbook_warm_up()\ndel _runbook_warm_up\n")
    plain = kernels.warm_up_code(_notebook(tmp_path, "from runbook_lib import vizier_tools, sizes"))
    assert "prepare" not in plain


def test_the_warm_up_imports_what_the_loaded_library_modules_declare_and_nothing_of_other_packages(monkeypatch) -> None:
    step = types.ModuleType("runbook_lib.some_step")
    step.WARM_UP_IMPORTS = ("colorsys", "wave")
    again = types.ModuleType("runbook_lib.other_step")
    again.WARM_UP_IMPORTS = ("wave",)
    outside = types.ModuleType("not_the_library")
    outside.WARM_UP_IMPORTS = ("no_such_module_anywhere",)  # importing it would fail the test
    for module in (step, again, outside):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    for name in ("colorsys", "wave"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert [n for n in warm_up.declared() if n in ("colorsys", "wave", "no_such_module_anywhere")] == ["colorsys", "wave"]
    warm_up.import_declared()
    assert {"colorsys", "wave"} <= set(sys.modules)
