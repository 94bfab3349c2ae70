"""Build hook (metadata: pyproject.toml): the wheel carries the files a checkout keeps at its root
(swarmbook.assets.SHIPPED: the demo stack, templates, hosts.env.example, the lab's machine setup)
as package data in swarmbook/_data/, where swarmbook.assets finds them once installed."""

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_swarmbook_assets", HERE / "swarmbook" / "assets.py")
assets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(assets)


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout itself
        dest = Path(self.build_lib) / "swarmbook" / "_data"
        for name in assets.SHIPPED:
            src, out = HERE / name, dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, out)


setup(cmdclass={"build_py": BuildWithShippedFiles})
