"""Install the OFA fairseq plugin as the single top-level package `ofa_plugin`.

models/, tasks/ and criterions/ live at the top of the source tree (the layout of DESIGN.md) but are
installed as `ofa_plugin.models` etc., so no generic names land in site-packages. fairseq itself is
installed by the Makefile (`ve-fairseq --no-deps`), see README.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ["models", "tasks", "criterions"]

setup(
    name="ofa-plugin",
    version="0.1.0",
    description="OFA (One For All) as a plugin for stock fairseq",
    python_requires=">=3.10",
    packages=find_packages(include=["ofa_plugin", "ofa_plugin.*"])
    + [f"ofa_plugin.{name}" for name in SUBPACKAGES],
    package_dir={f"ofa_plugin.{name}": name for name in SUBPACKAGES},
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "numpy>=1.24",
        "pillow>=9.0",
        "sentencepiece>=0.1.99",
        "timm>=0.9",
        "pycocoevalcap>=1.2",
        "rouge-score>=0.1.2",
        "open_clip_torch>=2.20",
        "torch-fidelity>=0.4",
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "scipy>=1.10"]},
)
