"""Paths of the source checkout paddlepalm runs from."""
import os

# The folder that holds the paddlepalm package: the project root in a source checkout (where
# examples/ and tests/ are), site-packages in an installed copy.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
