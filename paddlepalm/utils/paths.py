"""Paths of the source checkout paddlepalm runs from."""
import os
from typing import Optional

# The folder that holds the paddlepalm package: the project root in a source checkout (where
# examples/ and tests/ are), site-packages in an installed copy.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT_MARKERS = ("pyproject.toml", "setup.py", ".git")


def project_root_of(path: str) -> Optional[str]:
    """The nearest folder at or above ``path`` holding ``pyproject.toml``, ``setup.py`` or ``.git``."""
    folder = os.path.abspath(path)
    if not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    while True:
        if any(os.path.exists(os.path.join(folder, m)) for m in PROJECT_MARKERS):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
