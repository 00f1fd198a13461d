"""The package list: every lwcompress package, plus the Hydra config tree, which lives at the top level (conf/) and
ships inside the package as `lwcompress.conf` (pyproject.toml has the rest of the metadata)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lwcompress", "lwcompress.*"]), "lwcompress.conf"],
    package_dir={"lwcompress.conf": "conf"},
)
